# jobsched: PGXS build
EXTENSION = jobsched
MODULE_big = jobsched
OBJS = \
	src/jobsched.o \
	src/util.o \
	src/guc.o \
	src/shmem.o \
	src/status.o \
	src/wake.o \
	src/naming.o \
	src/render.o \
	src/render_sql.o \
	src/queue.o \
	src/kube.o \
	src/kobject.o \
	src/dispatch.o \
	src/sync.o \
	src/cancel.o \
	src/cleanup.o \
	src/worker.o
DATA = sql/jobsched--1.0.sql sql/jobsched--1.0--1.1.sql sql/jobsched--1.1.sql
PGFILEDESC = "jobsched - Kubernetes Jobs from a PostgreSQL queue table"

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = $(shell $(PKG_CONFIG) --cflags libcurl libcjson)
PG_CFLAGS = -std=gnu99 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs libcurl libcjson)


# pg_regress runs against a private server that preloads the library
REGRESS = upgrade setup schema submit privileges security render status
REGRESS_OPTS = --temp-config=test/regress.conf --temp-instance=./tmp_check \
	--dbname=contrib_regression

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the headers (PGXS tracks no header dependencies)
$(OBJS): $(wildcard src/*.h)

# a release tarball as PGXN expects it: the committed tree, in a versioned directory
DIST_VERSION = $(shell sed -n 's/^ *"version": "\(.*\)",$$/\1/p' META.json | head -1)
dist:
	git archive --format zip --prefix=$(EXTENSION)-$(DIST_VERSION)/ \
		-o $(EXTENSION)-$(DIST_VERSION).zip HEAD
.PHONY: dist
