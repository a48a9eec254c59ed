# conngov/Makefile

MODULE_big = conngov
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))

EXTENSION = conngov
DATA = $(wildcard conngov--*.sql)
PGFILEDESC = "conngov - connection budgets per application"

PG_CPPFLAGS = -I$(srcdir)/src

REGRESS = setup budgets matching functions monitoring floors privileges trust upgrade cleanup
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
$(OBJS): $(wildcard src/*.h)
