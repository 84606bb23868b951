//! aura's C ABI. Not built yet: no `aura_*` symbol is exported until the C API lands (see the README).
