# emqx_guard build. `make` builds the plugin package, `make test` runs every test.
# Both install the Erlang toolchain with apt when it is missing (they run as root on Debian 12).

SHELL := /bin/bash
APP := emqx_guard
# The version lives in one place: the vsn of erlang/emqx_guard.app.src.
VSN := $(shell sed -n 's/.*{vsn, *"\([^"]*\)"}.*/\1/p' erlang/$(APP).app.src)
NIF := priv/emqx_guard_nif.so
ERLANG_PKGS := erlang-nox erlang-dev erlang-eunit erlang-common-test erlang-dialyzer rebar3
CARGO ?= cargo
REBAR ?= rebar3
FUZZ_SECONDS ?= 600

.PHONY: all package toolchain nif compile test test-deps s3-server rust-test erlang-test lint bench fuzz clean

all: package

toolchain:
	@if ! command -v erl >/dev/null || ! command -v rebar3 >/dev/null || \
	    ! erl -noshell -eval 'case code:lib_dir(common_test) of {error,_} -> halt(1); _ -> halt(0) end' ; then \
	  echo "==> installing the Erlang toolchain with apt"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y $(ERLANG_PKGS) || { apt-get update && apt-get install -y $(ERLANG_PKGS); }; \
	fi

nif:
	$(CARGO) build --release --locked -p guard_nif
	@mkdir -p priv
	install -m 0644 target/release/libemqx_guard_nif.so $(NIF)

compile: toolchain nif
	$(REBAR) compile

package: compile
	./scripts/package.sh $(VSN)

# The off-site tests (Rust and Common Test) and `make bench` run a real S3 server, s3s-fs from
# crates.io, on 127.0.0.1. Built once with cargo (0.14.1: the newest release for this Rust;
# about 3 minutes on 2 cores), reused while it is installed.
S3S_FS_VERSION := 0.14.1
s3-server:
	@command -v s3s-fs >/dev/null || test -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs" || \
	  $(CARGO) install s3s-fs --version $(S3S_FS_VERSION) --features binary --locked

rust-test: s3-server
	$(CARGO) test --locked --workspace
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# The notification suite talks to a real SMTP server (Python aiosmtpd) that it starts on 127.0.0.1,
# with a test CA made by openssl. pip first (a pyenv or venv python3); Debian's own python3 refuses
# pip installs (externally managed), so there it comes from apt.
test-deps: s3-server
	@command -v openssl >/dev/null || { apt-get install -y openssl || { apt-get update && apt-get install -y openssl; }; }
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install aiosmtpd || \
	  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y python3-aiosmtpd || \
	    { apt-get update && apt-get install -y python3-aiosmtpd; }; }
	@python3 -c 'import aiosmtpd'

# The package suite installs the built package, so the package is built first.
erlang-test: package test-deps
	$(REBAR) eunit
	EMQX_GUARD_PACKAGE=$(CURDIR)/_build/plugin/$(APP)-$(VSN).tar.gz $(REBAR) ct

test: toolchain rust-test erlang-test

lint: compile
	$(REBAR) xref
	$(REBAR) dialyzer

bench: compile s3-server
	./scripts/bench.sh

fuzz:
	./scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
	rm -rf _build $(NIF)
