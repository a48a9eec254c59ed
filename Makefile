# conngov/Makefile

# Where the sources are, also when make runs in another directory: Debian's
# pg_buildext builds in one build-NN directory per major version (VPATH).
cg_srcdir := $(or $(VPATH),$(patsubst %/,%,$(dir $(firstword $(MAKEFILE_LIST)))))

MODULE_big = conngov
OBJS = $(patsubst $(cg_srcdir)/%.c,%.o,$(wildcard $(cg_srcdir)/src/*.c))

EXTENSION = conngov
DATA = $(notdir $(wildcard $(cg_srcdir)/conngov--*.sql))
PGFILEDESC = "conngov - connection budgets per application"

PG_CPPFLAGS = -I$(srcdir)/src

REGRESS = setup budgets matching functions monitoring floors fleets privileges trust reference upgrade cleanup
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf \
	--temp-instance=./tmp_regress --load-extension=conngov \
	--dbname=contrib_regression

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = tmp_regress tmp_check

# bitcode for JIT would need clang; conngov has nothing worth inlining
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared headers (PGXS tracks no dependencies)
$(OBJS): $(wildcard $(cg_srcdir)/src/*.h)

# a VPATH build writes its objects to src/ under the build directory
ifneq ($(cg_srcdir),.)
$(shell mkdir -p src)
endif

# make dist: the release zip PGXN expects, conngov-<version>.zip with one
# top-level conngov-<version>/ directory, from the committed tree (git
# archive), so nothing built or uncommitted gets in.  The version is
# META.json's (test/check-release.py checks it against conngov.control,
# debian/changelog and CHANGELOG.md).
cg_dist_version = $(shell sed -n 's/^   "version" *: *"\([^"]*\)".*/\1/p' $(cg_srcdir)/META.json)
.PHONY: dist
dist:
	git -C $(cg_srcdir) archive --format=zip \
		--prefix=conngov-$(cg_dist_version)/ \
		-o $(CURDIR)/conngov-$(cg_dist_version).zip HEAD
