# breakwater - see README.md. `make run` and `make test` are all a fresh
# machine needs: both install the Debian packages first when some are missing.

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc
PKGS     = libcares lmdb libnftables libipset libcap libpcre2-8 libsystemd hiredis
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# c-ares 1.28 and later (Debian 13: 1.34) mark the ares_parse_*_reply and
# ares_query calls deprecated in favour of its ares_dns_record API, which
# Debian 12's 1.18 lacks; the calls stay in the library. One source for
# both: the library's own switch keeps its warnings (and -Werror) quiet.
CFLAGS  += -DCARES_NO_DEPRECATED

# Debian packages (see README "Dependencies"). Building and running need
# only the first list: `make run` on a mail server must never pull in an MTA
# (postfix conflicts with courier and exim4). Tests and fuzzing add theirs.
BUILD_PACKAGES = build-essential pkg-config libev-dev libc-ares-dev liblmdb-dev \
		 libnftables-dev libipset-dev libcap-dev libpcre2-dev libsystemd-dev libhiredis-dev
RUN_PACKAGES   = nftables
TEST_PACKAGES  = libcmocka-dev rbldnsd postfix python3 dnsutils nftables ipset \
		 iptables iproute2 systemd-journal-remote man-db systemd python3-prometheus-client \
		 redis-server debootstrap
FUZZ_PACKAGES  = clang libclang-rt-14-dev llvm
LINT_PACKAGES  = clang-tidy cppcheck
COVERAGE_PACKAGES = gcovr
BENCH_PACKAGES = gnuplot-nox iproute2
DEB_PACKAGES   = debhelper dpkg-dev lintian python3 libcmocka-dev

# One version for --version, the man pages and the package: the newest
# entry of debian/changelog.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
CFLAGS  += -DBREAKWATER_VERSION='"$(VERSION)"'

# Pure modules: no sockets, no globals; unit-tested and fuzzed directly.
PURE_SRC = src/addr.c src/addrmap.c src/proxy.c src/smtp.c src/engine.c src/dnsbl_spec.c src/conf.c src/banproto.c src/banpolicy.c src/rules.c \
	   src/fleetproto.c src/netlimit.c \
	   src/logrules.c src/dnsttl.c
# Unit-tested too, against the real library they wrap (LMDB in a temp dir,
# hiredis's reader).
UNIT_LIB_SRC = src/store.c src/log.c src/follow.c src/redis_guard.c
SRC      = $(wildcard src/*.c)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
FUZZ_SRC = $(wildcard fuzz/fuzz_*.c)

# Two builds side by side: the plain one and the ASan+UBSan one.
B        = build
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all deb package-deps test-package deps build-deps test-deps test-fixtures fuzz-deps run user install test unit integration \
	test-plain test-asan fuzz fuzz-coverage coverage bench demo clean lint

all: $(B)/breakwater

# Installs whichever of the named packages are missing (as root, apt-get).
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

build-deps:
	$(call install_missing,$(BUILD_PACKAGES))
test-deps: build-deps
	$(call install_missing,$(TEST_PACKAGES))
fuzz-deps: build-deps
	$(call install_missing,$(FUZZ_PACKAGES))
deps: test-deps fuzz-deps
	$(call install_missing,$(RUN_PACKAGES) $(BENCH_PACKAGES) $(LINT_PACKAGES) $(COVERAGE_PACKAGES) $(DEB_PACKAGES))

$(B)/%.o: src/%.c $(wildcard src/*.h) | build-deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/asan/%.o: src/%.c $(wildcard src/*.h) | build-deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -c -o $@ $<

$(B)/main.o $(B)/asan/main.o: debian/changelog

$(B)/breakwater: $(SRC:src/%.c=$(B)/%.o)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/asan/breakwater: $(SRC:src/%.c=$(B)/asan/%.o)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(PURE_SRC:src/%.c=$(B)/%.o) $(UNIT_LIB_SRC:src/%.c=$(B)/%.o)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(B)/asan/tests/%: tests/unit/%.c $(PURE_SRC:src/%.c=$(B)/asan/%.o) $(UNIT_LIB_SRC:src/%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ -lcmocka $(LDLIBS)

# The wave generator (bench/README.md): load for benchmarks, and a tiny
# bounded run in the integration tests.
BENCH_SRC = bench/wave.c bench/wave_worker.c bench/wave_report.c

$(B)/bench/wave: $(BENCH_SRC) bench/wave.h | build-deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $(BENCH_SRC) -lev -lm

UNIT_BIN      = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
UNIT_BIN_ASAN = $(UNIT_SRC:tests/unit/%.c=$(B)/asan/tests/%)

# Starts the daemon on the shipped config, in front of an MTA on port 25:
# the user it runs as, and the nftables table its bans go to (table inet
# breakwater, dropping banned addresses on port 2525 only), come first.
RUN_OPTS = -o listen=127.0.0.1:2525 -o backend=127.0.0.1:25
run: build-deps $(B)/breakwater user
	$(call install_missing,$(RUN_PACKAGES))
	$(B)/breakwater rules -c etc/breakwater.conf $(RUN_OPTS) | nft -f -
	$(B)/breakwater serve -c etc/breakwater.conf $(RUN_OPTS)

# The system user serve runs as once it has bound its ports.
user:
	@id -u breakwater >/dev/null 2>&1 || \
		useradd --system --no-create-home --home-dir /var/lib/breakwater \
			--shell /usr/sbin/nologin breakwater

# The man pages breakwater(8) and breakwater.conf(5): man/mkman.py writes
# both from README.md and docs/*.md, so they say what the documentation says.
MAN_PAGES = $(B)/man/breakwater.8 $(B)/man/breakwater.conf.5
.PHONY: man uninstall
man: $(MAN_PAGES)
$(MAN_PAGES) &: README.md $(wildcard docs/*.md) man/mkman.py debian/changelog
	$(call install_missing,python3)
	python3 man/mkman.py --readme README.md --docs docs --out $(B)/man --version $(VERSION)

# Installs the binary (INSTALL_BIN, the tests give theirs) in PREFIX/sbin,
# the config in /etc/breakwater (never over an existing one), the systemd
# units (UNITS) in UNITDIR with the binary's path set, the man pages in MANDIR, and,
# when installing on this machine (no DESTDIR), the user and its state_dir
# (/var/lib/breakwater, which the units make writable); a running systemd
# then reloads its units. PREFIX/lib/systemd/system is in systemd's search
# path for /usr and /usr/local; /etc/systemd/system stays the admin's.
PREFIX      ?= /usr/local
SBINDIR      = $(PREFIX)/sbin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
MANDIR      ?= $(PREFIX)/share/man
INSTALL_BIN ?= $(B)/breakwater
UNITS        = breakwater.service breakwater-watch.service
SYSTEMD_RUNNING = $(if $(DESTDIR),,$(wildcard /run/systemd/system))
install: $(INSTALL_BIN) $(MAN_PAGES) $(if $(DESTDIR),,user)
	$(call install_missing,$(RUN_PACKAGES))
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/breakwater
	install -d -m 0755 $(DESTDIR)/etc/breakwater
	[ -e $(DESTDIR)/etc/breakwater/breakwater.conf ] || \
		install -m 0644 etc/breakwater.conf $(DESTDIR)/etc/breakwater/breakwater.conf
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	for u in $(UNITS); do \
		sed 's|/usr/local/sbin/breakwater|$(SBINDIR)/breakwater|g' etc/$$u \
			> $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 $(B)/man/breakwater.8 $(DESTDIR)$(MANDIR)/man8/breakwater.8
	install -m 0644 $(B)/man/breakwater.conf.5 $(DESTDIR)$(MANDIR)/man5/breakwater.conf.5
	$(if $(DESTDIR),,install -d -m 0750 -o breakwater -g "$$(id -g breakwater)" /var/lib/breakwater)
	$(if $(SYSTEMD_RUNNING),systemctl daemon-reload)

# Removes what install put in place (stopping and disabling the service
# first on this machine); the config only while it is the shipped one. The
# user, state_dir and the nftables table stay: `userdel breakwater`,
# `rm -r /var/lib/breakwater`, `nft delete table inet breakwater`.
uninstall:
	$(if $(SYSTEMD_RUNNING),systemctl disable --now $(UNITS) 2>/dev/null || true)
	rm -f $(DESTDIR)$(SBINDIR)/breakwater $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
		$(DESTDIR)$(MANDIR)/man8/breakwater.8 $(DESTDIR)$(MANDIR)/man5/breakwater.conf.5
	@if cmp -s etc/breakwater.conf $(DESTDIR)/etc/breakwater/breakwater.conf; then \
		rm -f $(DESTDIR)/etc/breakwater/breakwater.conf; \
	elif [ -e $(DESTDIR)/etc/breakwater/breakwater.conf ]; then \
		echo "kept $(DESTDIR)/etc/breakwater/breakwater.conf: it is not the shipped one"; \
	fi
	[ ! -d $(DESTDIR)/etc/breakwater ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)/etc/breakwater
	$(if $(SYSTEMD_RUNNING),systemctl daemon-reload)

# The Debian package (debian/), built from a copy of this tree without
# build/ and .git, source and binary, then checked by lintian (its
# overrides, each with its reason, are in debian/). Output: $(B)/deb/.
DEB_SRC = $(B)/deb/breakwater-$(VERSION)
package-deps: build-deps
	$(call install_missing,$(DEB_PACKAGES))
deb: package-deps
	rm -rf $(B)/deb && mkdir -p $(DEB_SRC)
	tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc
	lintian --fail-on error,warning --info $(B)/deb/breakwater_$(VERSION)_*.changes
	@ls $(B)/deb/breakwater_$(VERSION)_*.deb

# The package on Debian 12 and 13 in throwaway roots (tests/package/):
# built for 13 in a chroot, then install, upgrade, serve, remove, purge on
# each. Its chroots are cached with the Courier ones (about 1.2 GB); a
# first run builds them side by side (5.5 minutes more here, under load).
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
test-package: deb test-deps
	python3 tests/package/test_package.py --deb $(B)/deb/breakwater_$(VERSION)_$(DEB_ARCH).deb \
		--dsc $(B)/deb/breakwater_$(VERSION).dsc

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do $$t || exit 1; done

integration: $(B)/breakwater $(B)/bench/wave test-fixtures
	python3 tests/integration/run.py --binary $(B)/breakwater

test-plain: $(UNIT_BIN) $(B)/breakwater $(B)/bench/wave
	@for t in $(UNIT_BIN); do $$t || exit 1; done
	python3 tests/integration/run.py --binary $(B)/breakwater

test-asan: $(UNIT_BIN_ASAN) $(B)/asan/breakwater $(B)/bench/wave
	@for t in $(UNIT_BIN_ASAN); do $$t || exit 1; done
	python3 tests/integration/run.py --binary $(B)/asan/breakwater --sanitized

# The Debian chroots the Courier tests run Courier from
# (tests/integration/courier.py): built once, side by side, into
# /var/cache/breakwater-tests (about 90 s each here), then only checked.
# As root only: without root the Courier tests are skipped anyway.
test-fixtures: test-deps
	@if [ "$$(id -u)" = 0 ]; then \
		python3 tests/integration/courier.py bookworm & first=$$!; \
		python3 tests/integration/courier.py trixie; second=$$?; \
		wait $$first && exit $$second; \
	fi

test: test-deps test-fixtures
	$(MAKE) test-plain
	$(MAKE) test-asan

# Static analysis, run by .ci/run before make test; any finding fails it.
# Each src/*.c with the build's flags less optimisation, through:
# - clang-tidy: the checks, and why some are off, in .clang-tidy. One file
#   per run: clang-tidy 14 finds a false "uninitialized va_list" in every
#   file after the first of a run (LLVM bug 41311).
# - cppcheck: warning, portability, performance. Not style: it adds 31
#   findings, 29 of taste (26 variableScope, 3 constParameter) and 2 false
#   "always false" conditions. Not --library=posix: it adds only
#   accept4(fd, NULL, NULL) taken for a null dereference, and readdir and
#   getpwnam as non-reentrant.
# - gcc -fanalyzer.
# A false positive is silenced where it is, with its reason.
LINT_CFLAGS = $(filter-out -O% -g,$(CFLAGS))
lint: build-deps
	$(call install_missing,$(LINT_PACKAGES))
	@for f in $(SRC); do \
		echo "clang-tidy $$f"; \
		out=$$(clang-tidy --quiet $$f -- $(LINT_CFLAGS) 2>&1); rc=$$?; \
		printf '%s\n' "$$out" | grep -v -e '^$$' -e '^[0-9]* warnings\? generated\.$$'; \
		[ $$rc -eq 0 ] || exit 1; \
	done
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem --std=c11 -D_GNU_SOURCE -Isrc src/
	@for f in $(SRC); do \
		echo "gcc -fanalyzer $$f"; \
		gcc $(LINT_CFLAGS) -fanalyzer -c -o /dev/null $$f || exit 1; \
	done

# Line and branch coverage of src/ under the plain tests (gcov, read by
# gcovr): a --coverage build in $(B)/coverage, its unit and integration
# tests, then gcovr's summary and a table per file in
# $(B)/coverage/report.txt. The .gcda files are made empty and writable
# by all first: serve's processes run as `user` and must add their counts
# to them. Not part of make test.
COVERAGE_MAKE = CFLAGS="-O0 -g --coverage -DBREAKWATER_COVERAGE" $(MAKE) B=$(B)/coverage
coverage: test-deps
	$(call install_missing,$(COVERAGE_PACKAGES))
	rm -rf $(B)/coverage
	$(COVERAGE_MAKE) $(B)/coverage/breakwater $(B)/coverage/bench/wave \
		$(UNIT_SRC:tests/unit/%.c=$(B)/coverage/tests/%)
	for o in $(B)/coverage/*.o; do : > $${o%.o}.gcda && chmod 666 $${o%.o}.gcda; done
	$(COVERAGE_MAKE) test-plain
	gcovr --root . --filter 'src/' --object-directory $(B)/coverage --exclude-unreachable-branches \
		--txt $(B)/coverage/report.txt --print-summary
	@echo "per file: $(B)/coverage/report.txt"

# Line coverage of each parser by its committed corpus (llvm-cov), a line
# per target: fuzz/coverage.sh says how. Not part of make test.
fuzz-coverage: fuzz-deps
	FUZZ_SESSION_SRC="$(FUZZ_SESSION_SRC)" fuzz/coverage.sh $(B)/fuzz-coverage $(PURE_SRC)

# libFuzzer on each target for FUZZ_SECONDS each (not part of make test).
# Every target runs even after one finds something; the run fails at the
# end, naming each target that did (its crash-* file is in the build dir).
# fuzz_session drives the session state machine, so it links the modules
# around it (FUZZ_SESSION_SRC); it plays the event loop and the DNSBL
# lookups itself.
FUZZ_SECONDS ?= 60
FUZZ_SESSION_SRC = src/session.c src/relay.c src/clients.c src/log.c
fuzz: fuzz-deps
	@mkdir -p $(B)/fuzz
	@failed=; for f in $(FUZZ_SRC); do \
		n=$$(basename $$f .c); \
		extra=; [ $$n = fuzz_session ] && extra="$(FUZZ_SESSION_SRC)"; \
		clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
			-o $(B)/fuzz/$$n $$f $(PURE_SRC) $$extra -lpcre2-8 || exit 1; \
		mkdir -p $(B)/fuzz/$$n.corpus; \
		(cd $(B)/fuzz && ./$$n -max_total_time=$(FUZZ_SECONDS) $$n.corpus $(CURDIR)/fuzz/corpus/$$n) \
			|| failed="$$failed $$n"; \
	done; \
	if [ -n "$$failed" ]; then echo "make fuzz: findings in:$$failed (crash files in $(B)/fuzz)"; exit 1; fi

# The side-by-side benchmark (bench/bench.py, about 10 minutes; writes
# BENCHMARKS.md and bench/wave-replay.png). Not part of make test.
bench: test-deps $(B)/breakwater $(B)/bench/wave
	$(call install_missing,$(BENCH_PACKAGES))
	python3 bench/bench.py

# A spam wave against breakwater in front of smtp-sink, in under a minute
# (bench/demo.py; not part of make test).
demo: test-deps $(B)/breakwater $(B)/bench/wave
	python3 bench/demo.py --binary $(B)/breakwater --wave $(B)/bench/wave

clean:
	rm -rf $(B)
