# Release builds and packages for dexcred. `make help` lists the targets.
#
# Everything lands in $(DIST) (default dist/):
#   dexcred-<version>-<target>.tar.gz   release archive (binary, completions,
#                                       man page, install.sh, docs)
#   dexcred_<version>-1_<arch>.deb      Debian package
#   sha256sums                          checksums of the archives and packages
#   dexcred.yaml                        krew plugin manifest (make krew)
#   dexcred.rb                          Homebrew formula (make homebrew)
#
# Variables (make VAR=value):
#   TARGET      Rust target triple [default: this machine's]
#   LINKAGE     static (default) or dynamic. On *-linux-gnu targets `static`
#               links glibc statically (`-C target-feature=+crt-static`, a
#               static-pie executable); see docs/performance.md. Set
#               LINKAGE=dynamic for a binary that uses the system's NSS
#               modules (mDNS, LDAP/sssd users). Other targets ignore it.
#   PROFILE     cargo profile [default: release]; `dev` for a quick build
#   BIN         the binary to package [default: built by cargo for TARGET];
#               when given, nothing is built
#   GEN_BIN     a dexcred that runs here, to generate completions and the man
#               page [default: BIN]; set it when BIN is cross-compiled
#   DIST        output directory [default: dist]
#   RELEASE_URL where the archives will be downloadable, with {version},
#               {target} and {archive} placeholders, e.g.
#               https://github.com/ORG/dexcred/releases/download/v{version}/{archive}
#   HOMEPAGE    project home page, for the krew manifest and Homebrew formula
#   PREFIX      for `make install` [default: /usr/local]
#   COMPRESS    the archive compressor [default: gzip -9n]

SHELL := /bin/sh
CARGO ?= cargo
TAR ?= tar
SHA256SUM ?= sha256sum
COMPRESS ?= gzip -9n

VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
HOST := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
TARGET ?= $(HOST)
CARGO_TARGET_DIR ?= target
DIST ?= dist
LINKAGE ?= static
PROFILE ?= release
# cargo names the output directory of the dev profile `debug`.
PROFILE_DIR := $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
BIN ?= $(CARGO_TARGET_DIR)/$(TARGET)/$(PROFILE_DIR)/dexcred
GEN_BIN ?= $(BIN)
PREFIX ?= /usr/local
RELEASE_URL ?=
HOMEPAGE ?=
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

NAME := dexcred-$(VERSION)-$(TARGET)
STAGE := $(DIST)/.stage
# A BIN given on the command line (or in the environment) is packaged as is.
BUILD := $(if $(filter command line environment,$(origin BIN)),,build)

# Static glibc for the target only: the explicit --target keeps RUSTFLAGS
# away from build scripts and proc-macro crates (clap_derive, serde_derive),
# which cannot be built with +crt-static. That is also why a plain
# `cargo build` stays dynamic and builds into target/release/.
STATIC_RUSTFLAGS := $(if $(and $(filter static,$(LINKAGE)),$(filter %-linux-gnu,$(TARGET))),-C target-feature=+crt-static)
BUILD_ENV := $(if $(STATIC_RUSTFLAGS),RUSTFLAGS='$(strip $(RUSTFLAGS) $(STATIC_RUSTFLAGS))')

.PHONY: help build static archive deb deb-assets checksums krew homebrew dist install clean

help:
	@echo 'make build       cargo build --profile $$(PROFILE) for $$(TARGET) ($$(LINKAGE) linkage)'
	@echo 'make static      make build, check that the binary is static, print its path last'
	@echo 'make archive     $(DIST)/$(NAME).tar.gz and $(DIST)/sha256sums'
	@echo 'make deb         $(DIST)/dexcred_$(VERSION)-1_<arch>.deb (dpkg-deb, from [package.metadata.deb])'
	@echo 'make deb-assets  target/assets/ (completions, man page) for `cargo deb`'
	@echo 'make krew        $(DIST)/dexcred.yaml from the archives (needs RELEASE_URL, HOMEPAGE)'
	@echo 'make homebrew    $(DIST)/dexcred.rb from the archives (needs RELEASE_URL, HOMEPAGE)'
	@echo 'make dist        archive + deb'
	@echo 'make install     install.sh into $$(PREFIX)'

build:
	$(BUILD_ENV) $(CARGO) build --profile $(PROFILE) --locked --target $(TARGET)

# The binary users get. Its path is the last line of output, for scripts:
#   bin=$$(make -s static | tail -n 1)
static: build
	@case "$$(LC_ALL=C ldd '$(BIN)' 2>&1)" in \
		*'statically linked'*|*'not a dynamic executable'*) ;; \
		*) echo "make static: $(BIN) is dynamically linked (LINKAGE=$(LINKAGE), TARGET=$(TARGET))" >&2; exit 1 ;; \
	esac
	@echo '$(BIN)'

archive: $(BUILD)
	rm -rf '$(STAGE)/$(NAME)'
	mkdir -p '$(STAGE)/$(NAME)/completions' '$(STAGE)/$(NAME)/man' '$(STAGE)/$(NAME)/docs'
	cp '$(BIN)' '$(STAGE)/$(NAME)/dexcred'
	'$(GEN_BIN)' completions bash > '$(STAGE)/$(NAME)/completions/dexcred.bash'
	'$(GEN_BIN)' completions zsh > '$(STAGE)/$(NAME)/completions/_dexcred'
	'$(GEN_BIN)' completions fish > '$(STAGE)/$(NAME)/completions/dexcred.fish'
	'$(GEN_BIN)' man > '$(STAGE)/$(NAME)/man/dexcred.1'
	cp packaging/install.sh '$(STAGE)/$(NAME)/install.sh'
	cp README.md '$(STAGE)/$(NAME)/README.md'
	for f in docs/*.md; do [ ! -f "$$f" ] || cp "$$f" '$(STAGE)/$(NAME)/docs/'; done
	find '$(STAGE)/$(NAME)' -type d -exec chmod 0755 {} +
	find '$(STAGE)/$(NAME)' -type f -exec chmod 0644 {} +
	chmod 0755 '$(STAGE)/$(NAME)/dexcred' '$(STAGE)/$(NAME)/install.sh'
	# Regular files and directories only (krew cannot unpack links),
	# reproducible: sorted, owned by root, one timestamp.
	$(TAR) --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime='@$(SOURCE_DATE_EPOCH)' -C '$(STAGE)' -cf - '$(NAME)' \
		| $(COMPRESS) > '$(DIST)/$(NAME).tar.gz.tmp'
	mv -f '$(DIST)/$(NAME).tar.gz.tmp' '$(DIST)/$(NAME).tar.gz'
	rm -rf '$(STAGE)'
	$(MAKE) --no-print-directory checksums DIST='$(DIST)'

deb: $(BUILD)
	packaging/deb/build.sh --binary '$(BIN)' --gen-binary '$(GEN_BIN)' --out '$(DIST)'
	$(MAKE) --no-print-directory checksums DIST='$(DIST)'

# For cargo-deb, which packages target/assets/ as listed in Cargo.toml.
deb-assets: $(BUILD)
	mkdir -p target/assets/completions target/assets/man
	'$(GEN_BIN)' completions bash > target/assets/completions/dexcred.bash
	'$(GEN_BIN)' completions zsh > target/assets/completions/_dexcred
	'$(GEN_BIN)' completions fish > target/assets/completions/dexcred.fish
	'$(GEN_BIN)' man | gzip -9n > target/assets/man/dexcred.1.gz

checksums:
	cd '$(DIST)' && files=$$(ls dexcred-*.tar.gz dexcred_*.deb 2>/dev/null || true) \
		&& [ -n "$$files" ] && $(SHA256SUM) $$files > sha256sums.tmp && mv -f sha256sums.tmp sha256sums

krew:
	packaging/krew/manifest.sh --dist '$(DIST)' --version '$(VERSION)' \
		--uri-template '$(RELEASE_URL)' --homepage '$(HOMEPAGE)' > '$(DIST)/dexcred.yaml.tmp'
	mv -f '$(DIST)/dexcred.yaml.tmp' '$(DIST)/dexcred.yaml'

homebrew:
	packaging/homebrew/formula.sh --dist '$(DIST)' --version '$(VERSION)' \
		--uri-template '$(RELEASE_URL)' --homepage '$(HOMEPAGE)' > '$(DIST)/dexcred.rb.tmp'
	mv -f '$(DIST)/dexcred.rb.tmp' '$(DIST)/dexcred.rb'

dist: archive deb

install: $(BUILD)
	sh packaging/install.sh --binary '$(BIN)' --prefix '$(PREFIX)'

clean:
	rm -rf '$(DIST)' target/assets
