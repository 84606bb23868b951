# aura for C and C++ users: builds libaura.a / libaura.so (the AuraIO 0.6 compatible C API)
# with cargo and installs them with aura.h, aura.hpp, pkg-config and CMake files.
#
#   make                      release libraries in $(BUILD_DIR)/lib (+ pkgconfig/libaura.pc)
#   make install PREFIX=/usr/local DESTDIR=
#   make uninstall PREFIX=/usr/local DESTDIR=
#   make test                 the C/C++ API test suite (cargo test -p aura-tests --test capi)
#   make clean                removes $(BUILD_DIR)

CARGO ?= cargo
# Its own target dir: an outer `cargo test` holding the main target dir's lock never blocks it.
CARGO_TARGET_DIR ?= target/make
export CARGO_TARGET_DIR
BUILD_DIR ?= build
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/aura
DESTDIR ?=
INSTALL ?= install

VERSION := 0.6.0
VERSION_MAJOR := 0
VERSION_MINOR := 6
SOMAJOR := 0
# What Rust's standard library needs when libaura.a is linked statically
# (`rustc --print native-static-libs`).
LIBS_PRIVATE := -lpthread -ldl -lm -lrt -lutil -lgcc_s -lc

CAPI := aura-capi
RELEASE := $(CARGO_TARGET_DIR)/release
LIB_OUT := $(BUILD_DIR)/lib
SONAME := libaura.so.$(SOMAJOR)
REALNAME := libaura.so.$(VERSION)

.PHONY: all lib install uninstall test clean FORCE

all: lib

lib: $(LIB_OUT)/libaura.a $(LIB_OUT)/$(REALNAME) $(LIB_OUT)/pkgconfig/libaura.pc

# cargo decides what is stale; FORCE makes make ask it every time.
$(RELEASE)/libaura.a $(RELEASE)/libaura.so: FORCE
	$(CARGO) build --release -p aura-capi

# Copied under a temporary name, then renamed: a program running against the old library keeps
# its (unlinked) copy instead of seeing the file change under it.
$(LIB_OUT)/libaura.a: $(RELEASE)/libaura.a
	@mkdir -p $(LIB_OUT)
	cp -f $< $@.tmp && mv -f $@.tmp $@

$(LIB_OUT)/$(REALNAME): $(RELEASE)/libaura.so
	@mkdir -p $(LIB_OUT)
	cp -f $< $@.tmp && mv -f $@.tmp $@
	ln -sf $(REALNAME) $(LIB_OUT)/$(SONAME)
	ln -sf $(SONAME) $(LIB_OUT)/libaura.so

# For use from the build tree: PKG_CONFIG_PATH=$(BUILD_DIR)/lib/pkgconfig.
$(LIB_OUT)/pkgconfig/libaura.pc: $(CAPI)/aura.pc.in FORCE
	@mkdir -p $(LIB_OUT)/pkgconfig
	sed -e 's|@PREFIX@|$(abspath $(BUILD_DIR))|' -e 's|@LIBDIR@|$(abspath $(LIB_OUT))|' \
	    -e 's|@INCLUDEDIR@|$(abspath $(CAPI)/include)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' $< > $@

install: lib
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(CMAKEDIR)
	$(INSTALL) -m 644 $(LIB_OUT)/libaura.a $(DESTDIR)$(LIBDIR)/libaura.a
	$(INSTALL) -m 755 $(LIB_OUT)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libaura.so
	$(INSTALL) -m 644 $(CAPI)/include/aura.h $(DESTDIR)$(INCLUDEDIR)/aura.h
	if [ -f $(CAPI)/include/aura.hpp ]; then \
	    $(INSTALL) -m 644 $(CAPI)/include/aura.hpp $(DESTDIR)$(INCLUDEDIR)/aura.hpp; fi
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	    $(CAPI)/aura.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libaura.pc
	sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' -e 's|@SOMAJOR@|$(SOMAJOR)|g' \
	    -e 's|@LIBS_PRIVATE_CMAKE@|$(subst $() ,;,$(filter-out -lpthread,$(LIBS_PRIVATE)))|g' \
	    $(CAPI)/cmake/auraConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/auraConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' \
	    $(CAPI)/cmake/auraConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/auraConfigVersion.cmake
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libaura.a $(DESTDIR)$(LIBDIR)/$(REALNAME) \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libaura.so \
	    $(DESTDIR)$(INCLUDEDIR)/aura.h $(DESTDIR)$(INCLUDEDIR)/aura.hpp \
	    $(DESTDIR)$(PKGCONFIGDIR)/libaura.pc \
	    $(DESTDIR)$(CMAKEDIR)/auraConfig.cmake $(DESTDIR)$(CMAKEDIR)/auraConfigVersion.cmake
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null

test:
	$(CARGO) test -p aura-tests --test capi

clean:
	rm -rf $(BUILD_DIR)
