"""Nothing a user can create changes what the worker or the extension executes.

A role with nothing but LOGIN, CREATE on schema public and USAGE on schema
jobsched shadows, in public, every function, aggregate and operator that the
worker's statements (the SQL string literals of src/*.c) and the extension's
SQL (sql/jobsched--<default_version>.sql: function bodies, the view, policies,
constraints, triggers' WHEN clauses) use, for the argument types that occur in
the extension's tables and statements; it also shadows the extension's
relations with views and the types named in casts with domains.  The
database's default search_path is set to put public before pg_catalog, the
worker is restarted under it (so it plans its statements with the traps in
place), and the whole job lifecycle runs with the jobs queued, cancelled,
retried and rendered by that role.  Every planted object is a trap that
records its call three ways (a row of public.trap_calls, which a rollback
would take away; a sequence, which it would not; a WARNING in the server
log): none may have run.

The lists of names are generated from the statements, so a new statement is
covered without touching this file; `pytest -s` prints them.
"""
import glob
import itertools
import json
import os
import re
import time

import psycopg2
import pytest

from conftest import age, delete_behind_the_watch, drive, server_job
from harness import DBNAME, ROOT, Queries, wait_for

HOSTILE = "hostile"
HOSTILE_PATH = "public, pg_catalog"
TRAP_MARK = "jobsched-trap:"

# argument types of the traps: those of the extension's tables and statements
TRAP_TYPES = ["int4", "int8", "numeric", "float8", "text", "bool", "jsonb", "json",
              "timestamptz", "timestamp", "interval", "bytea", "name", "regrole", "oid",
              "text[]", "int8[]", "int4[]", "bool[]", "timestamptz[]"]


# ---- the statements the worker and the extension run --------------------

_C_TOKEN = re.compile(r'''
    (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<char>'(?:\\.|[^'\\\n])*')
  | (?P<ws>\s+|\\\n)
  | (?P<other>[A-Za-z_0-9]+|.)
''', re.S | re.X)
_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def c_string_runs(source):
    """Every run of adjacent C string literals, concatenated as the compiler
    does; a macro name or any other token between two literals ends a run
    (so a statement built by a macro comes as several fragments)."""
    runs, run = [], None
    for m in _C_TOKEN.finditer(source):
        if m.lastgroup == "string":
            text = re.sub(r"\\(.)", lambda e: _C_ESCAPES.get(e.group(1), e.group(1)),
                          m.group()[1:-1])
            run = (run or "") + text
        elif m.lastgroup in ("ws", "comment"):
            continue
        elif run is not None:
            runs.append(run)
            run = None
    if run is not None:
        runs.append(run)
    return runs


_SQL_START = re.compile(r"^[\s(]*(SELECT|UPDATE|INSERT|DELETE|WITH|VALUES)\s+\S")
_SQL_WORD = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|CASE|EXISTS)\b")
_SQL_REF = re.compile(r"\bjobsched\.\w+|\$\d")


def c_statements(root=ROOT):
    """(file, text) of every C string that is a statement or a fragment of one."""
    out = []
    for path in sorted(glob.glob(os.path.join(root, "src", "*.c"))):
        with open(path) as f:
            for run in c_string_runs(f.read()):
                if _SQL_START.match(run) or (_SQL_WORD.search(run) and _SQL_REF.search(run)):
                    out.append((os.path.relpath(path, root), run))
    return out


def sql_script(root=ROOT):
    """(file, text) of the script CREATE EXTENSION runs."""
    with open(os.path.join(root, "jobsched.control")) as f:
        version = re.search(r"default_version\s*=\s*'([^']+)'", f.read()).group(1)
    path = os.path.join(root, "sql", f"jobsched--{version}.sql")
    with open(path) as f:
        return os.path.relpath(path, root), f.read()


_SQL_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<meta>(?<![^\n])\\[^\n]*)
  | (?P<dollar>\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<param>\$\d+)
  | (?P<string>[EeBbXxNn]?'(?:''|[^'])*')
  | (?P<qident>"(?:""|[^"])*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<ident>[A-Za-z_\x80-\uffff][A-Za-z_0-9$\x80-\uffff]*)
  | (?P<cast>::)
  | (?P<assign>:=)
  | (?P<op>(?:(?!--|/\*)[-+*/<>=~!@\#%^&|`?])+)
  | (?P<punct>[(),;\[\].:])
""", re.S | re.X)


def sql_tokens(text):
    """(kind, text) pairs.  Dollar quotes stay as tokens of their own, so
    function bodies are tokenized with the rest; identifiers are folded to
    lower case, quoted ones are unquoted."""
    out = []
    for m in _SQL_TOKEN.finditer(text):
        kind, tok = m.lastgroup, m.group()
        if kind in ("ws", "comment", "meta"):
            continue
        if kind == "op":
            # the lexer's rule: a multi-character operator ending in + or -
            # gives those back unless it holds one of ~ ! @ # % ^ & | ` ?
            rest = ""
            while len(tok) > 1 and tok[-1] in "+-" and not re.search(r"[~!@#%^&|`?]", tok):
                tok, rest = tok[:-1], tok[-1] + rest
            out.append(("op", tok))
            out.extend(("op", c) for c in rest)
            continue
        if kind == "ident":
            tok = tok.lower()
        elif kind == "qident":
            kind, tok = "ident", tok[1:-1].replace('""', '"')
        out.append((kind, tok))
    return out


# words after which an operator has no left operand (a prefix operator)
_NO_OPERAND_BEFORE = set("""
    select from where and or not when then else case on set by return returning in is as
    limit offset having using check default values with into raise if elsif exception
    distinct all any some union except intersect like ilike between join left right inner
    full cross order group filter over exists array lateral perform update delete insert
    for each row execute begin declare loop while constant skip locked notify do
""".split())
# identifiers followed by "(" that are syntax, not calls
_NOT_CALLS = set("""
    array exists in values any all some over filter and or not check using when then else
    from rows select where on as key references unique if elsif returning by into join
    lateral table return with cast row case is like ilike set perform raise exception
    default primary foreign distinct union except intersect window partition group order
    having limit offset grouping insert update delete truncate
""".split())
# a name followed by "(" right after these is being declared, or is a column list
_DECLARING = set("""
    into references table index view function procedure trigger policy as type aggregate
    domain sequence schema extension operator
""".split())
_DDL = {"create", "alter", "grant", "revoke", "comment", "drop"}


def _operand_end(tok):
    kind, text = tok
    if kind in ("number", "string", "param"):
        return True
    if kind == "punct":
        return text in (")", "]")
    if kind == "ident":
        return text not in _NO_OPERAND_BEFORE
    return False


def analyze(text, found):
    """Add to found what a text of SQL uses: calls (schema or None, name),
    binary and prefix operators (with those its syntax spells in words:
    IN, IS DISTINCT FROM, NULLIF, CASE x WHEN, LIKE, BETWEEN), and the type
    names of its casts."""
    toks = sql_tokens(text)
    in_body = False
    stmt_start = None
    for i, (kind, tok) in enumerate(toks):
        prev = toks[i - 1] if i > 0 else ("", "")
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "dollar":
            in_body = not in_body
            continue
        if kind == "punct" and tok == ";":
            if not in_body:
                stmt_start = None
            continue
        if stmt_start is None and kind == "ident" and not in_body:
            stmt_start = tok
        if kind == "op":
            if _operand_end(prev):
                found["operators"].add(tok)
            elif tok != "*":    # SELECT *, count(*), x.*
                found["prefix_operators"].add(tok)
            continue
        if kind == "cast":
            j = i + 1
            if j < len(toks) and toks[j][0] == "ident":
                name = toks[j][1]
                if j + 2 < len(toks) and toks[j + 1] == ("punct", ".") and toks[j + 2][0] == "ident":
                    j += 2
                    name = toks[j][1]
                found["cast_types"].add(name)
            continue
        if kind != "ident":
            continue
        if tok == "in" and nxt == ("punct", "("):
            found["operators"].add("<>" if prev == ("ident", "not") else "=")
        elif tok == "distinct" and prev[1] in ("is", "not") and nxt == ("ident", "from"):
            found["operators"].add("=")
        elif tok == "nullif" and nxt == ("punct", "("):
            found["operators"].add("=")
        elif tok == "case" and nxt != ("ident", "when"):
            found["operators"].add("=")
        elif tok in ("like", "ilike"):
            found["operators"].add(("!" if prev == ("ident", "not") else "")
                                   + ("~~" if tok == "like" else "~~*"))
        elif tok == "between":
            found["operators"].update({"<", ">"} if prev == ("ident", "not") else {">=", "<="})
        elif tok == "similar":
            found["operators"].add("~")
        if nxt != ("punct", "(") or tok in _NOT_CALLS:
            continue
        schema, before = None, prev
        if prev == ("punct", ".") and i >= 2 and toks[i - 2][0] == "ident":
            schema = toks[i - 2][1]
            before = toks[i - 3] if i >= 3 else ("", "")
        if before[0] == "ident" and before[1] in _DECLARING:
            continue
        if before == ("ident", "on") and not in_body and stmt_start in _DDL:
            continue            # CREATE INDEX ... ON table (columns)
        found["calls"].add((schema, tok))


def generate_lists(root=ROOT):
    found = {"calls": set(), "operators": set(), "prefix_operators": set(),
             "cast_types": set()}
    statements = c_statements(root)
    for _, text in statements:
        analyze(text, found)
    script = sql_script(root)
    analyze(script[1], found)
    found["sources"] = sorted({f for f, _ in statements}) + [script[0]]
    found["statements"] = len(statements)
    return found


# ---- the traps -----------------------------------------------------------

def lit(s):
    return "'" + s.replace("'", "''") + "'"


def ident(s):
    return '"' + s.replace('"', '""') + '"'


POLY_ELEMENT = {"anyelement", "anynonarray", "anyenum", "anycompatible",
                "anycompatiblenonarray", "any"}
POLY_ARRAY = {"anyarray", "anycompatiblearray"}


class Types:
    """pg_type, enough to name types and resolve polymorphic results."""

    def __init__(self, pg):
        rows = pg.query("SELECT t.oid, t.typname, n.nspname, t.typtype, t.typelem, t.typarray"
                        "  FROM pg_catalog.pg_type t"
                        "  JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace")
        self.by_oid = {r[0]: r[1:] for r in rows}
        self.catalog = {r[1]: r[0] for r in rows if r[2] == "pg_catalog"}

    def oid(self, spec):
        """int4, text[] -> the pg_catalog type's oid, or None."""
        if spec.endswith("[]"):
            elem = self.catalog.get(spec[:-2])
            return self.by_oid[elem][4] or None if elem else None
        return self.catalog.get(spec)

    def sql(self, oid):
        typname, nsp = self.by_oid[oid][0], self.by_oid[oid][1]
        return f"{ident(nsp)}.{ident(typname)}"

    def short(self, oid):
        typname, _, _, elem, _ = self.by_oid[oid]
        if typname.startswith("_") and elem:
            return self.by_oid[elem][0] + "[]"
        return typname

    def pseudo(self, oid):
        return self.by_oid[oid][2] == "p"

    def name(self, oid):
        return self.by_oid[oid][0]


def result_type(cands, actual, types, fallback):
    """The result type (oid, setof) a call with argument types actual would
    get from the best of cands [(argtypes, rettype, retset)], so a statement
    that took the trap for the real thing would still type-check."""
    def score(c):
        return sum(2 if a == t else 1 if types.pseudo(a) else 0 for a, t in zip(c[0], actual))
    same = [c for c in cands if len(c[0]) == len(actual)]
    best = max(same, key=score) if same else (cands[0] if cands else None)
    if best is None:
        return fallback, False
    args, ret, retset = best
    if types.pseudo(ret):
        name = types.name(ret)
        resolved = None
        pairs = list(zip(args, actual))
        if name in POLY_ELEMENT:
            resolved = next((types.by_oid[t][3] for a, t in pairs
                             if types.name(a) in POLY_ARRAY and types.by_oid[t][3]), None) or \
                next((t for a, t in pairs if types.name(a) in POLY_ELEMENT), None)
        elif name in POLY_ARRAY:
            resolved = next((t for a, t in pairs
                             if types.name(a) in POLY_ARRAY and types.by_oid[t][3]), None) or \
                next((types.by_oid[t][4] for a, t in pairs
                      if types.name(a) in POLY_ELEMENT and types.by_oid[t][4]), None)
        elif name in ("void", "record"):
            resolved = ret
        ret = resolved or fallback
        if types.pseudo(ret) and types.name(ret) not in ("void", "record"):
            ret = fallback
    return ret, retset


def trap_body(label, ret_sql, setof=False):
    returns = "RETURN;" if setof or ret_sql == '"pg_catalog"."void"' else "RETURN NULL;"
    return (f"LANGUAGE plpgsql AS $trap$BEGIN PERFORM public.trap_hit({lit(label)}); "
            f"{returns} END$trap$")


def plant_sql(pg, found):
    """The DDL of every trap, as (kind, statement) pairs, with the objects'
    labels.  Every type is named with its schema: the hostile session puts
    public first, where domains shadow some type names."""
    types = Types(pg)
    text_oid = types.catalog["text"]
    bool_oid = types.catalog["bool"]
    specs = sorted(set(TRAP_TYPES) | {t for t in found["cast_types"] if types.oid(t)}
                   | {t + "[]" for t in found["cast_types"] if types.oid(t + "[]")},
                   key=lambda s: (s.endswith("[]"), s))
    arg_types = [types.oid(s) for s in specs]
    assert all(arg_types), specs
    out = []

    # functions and aggregates: every name called, with 0, 1 and 2 arguments
    names = sorted({name for _, name in found["calls"]})
    schemas = {name: {s for s, n in found["calls"] if n == name and s} for name in names}
    rows = pg.query("SELECT p.proname, n.nspname, p.prokind, p.proargtypes::pg_catalog.oid[],"
                    "       p.prorettype, p.proretset"
                    "  FROM pg_catalog.pg_proc p"
                    "  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE p.proname = ANY (%s) AND n.nspname = ANY (%s)"
                    " ORDER BY p.oid", (names, ["pg_catalog", "jobsched"]))
    signatures = [()] + [(t,) for t in arg_types] + list(itertools.product(arg_types, repeat=2))
    k = 0
    for name in names:
        mine = [r for r in rows if r[0] == name and
                (r[1] == "pg_catalog" or r[1] in schemas[name])]
        cands = [(tuple(r[3]), r[4], r[5]) for r in mine]
        aggregate = any(r[2] == "a" for r in mine)
        for sig in signatures:
            k += 1
            ret, setof = result_type(cands, sig, types, sig[0] if sig else text_oid)
            shown = ", ".join(types.short(t) for t in sig)
            args = ", ".join(types.sql(t) for t in sig)
            if not aggregate:
                label = f"function public.{name}({shown})"
                out.append(("function", f"CREATE FUNCTION public.{ident(name)}({args}) RETURNS "
                            f"{'SETOF ' if setof else ''}{types.sql(ret)} "
                            f"{trap_body(label, types.sql(ret), setof)};"))
                continue
            # an aggregate: a trap for each row (state function) and one for
            # each group, which runs even over no rows (final function)
            state = ret if not types.pseudo(ret) else text_oid
            label = f"aggregate public.{name}({shown or '*'})"
            sargs = ", ".join([types.sql(state)] + [types.sql(t) for t in sig])
            out.append(("function", f"CREATE FUNCTION public.trap_sfunc_{k}({sargs}) RETURNS "
                        f"{types.sql(state)} {trap_body(label + ' (a row)', types.sql(state))};"))
            out.append(("function", f"CREATE FUNCTION public.trap_ffunc_{k}({types.sql(state)}) "
                        f"RETURNS {types.sql(state)} {trap_body(label, types.sql(state))};"))
            out.append(("aggregate", f"CREATE AGGREGATE public.{ident(name)}({args or '*'}) "
                        f"(SFUNC = public.trap_sfunc_{k}, STYPE = {types.sql(state)}, "
                        f"FINALFUNC = public.trap_ffunc_{k});"))

    # operators: every one used, for every pair of types (and prefix ones)
    ops = pg.query("SELECT oprname, oprkind, oprleft, oprright, oprresult"
                   "  FROM pg_catalog.pg_operator"
                   " WHERE oprnamespace = 'pg_catalog'::pg_catalog.regnamespace"
                   " ORDER BY oid")
    for kind, symbols, sigs in (("b", found["operators"], list(itertools.product(arg_types, repeat=2))),
                                ("l", found["prefix_operators"], [(t,) for t in arg_types])):
        for op in sorted(symbols):
            cands = [((r[2], r[3]) if kind == "b" else (r[3],), r[4], False)
                     for r in ops if r[0] == op and r[1] == kind]
            comparison = re.fullmatch(r"[<>=!~]+", op) is not None
            for sig in sigs:
                k += 1
                ret, _ = result_type(cands, sig, types, bool_oid if comparison else sig[0])
                shown = ", ".join(types.short(t) for t in sig)
                label = f"operator public.{op}({shown})"
                args = ", ".join(types.sql(t) for t in sig)
                out.append(("function", f"CREATE FUNCTION public.trap_op_{k}({args}) RETURNS "
                            f"{types.sql(ret)} {trap_body(label, types.sql(ret))};"))
                sides = (f"LEFTARG = {types.sql(sig[0])}, RIGHTARG = {types.sql(sig[1])}"
                         if kind == "b" else f"RIGHTARG = {types.sql(sig[0])}")
                out.append(("operator", f"CREATE OPERATOR public.{op} ({sides}, "
                            f"FUNCTION = public.trap_op_{k});"))

    # relations: a view for each of the extension's tables and views, which
    # springs its trap when read, and (INSTEAD OF triggers) when written
    rels = pg.query("SELECT c.relname, pg_catalog.array_agg(a.attname ORDER BY a.attnum),"
                    "       pg_catalog.array_agg(a.atttypid ORDER BY a.attnum)"
                    "  FROM pg_catalog.pg_class c"
                    "  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
                    " WHERE c.relnamespace = 'jobsched'::pg_catalog.regnamespace"
                    "   AND c.relkind IN ('r', 'v', 'm', 'p', 'f')"
                    "   AND a.attnum > 0 AND NOT a.attisdropped"
                    " GROUP BY c.relname ORDER BY c.relname")
    for relname, cols, typs in rels:
        select = ", ".join(f"NULL::{types.sql(t)} AS {ident(c)}" for c, t in zip(cols, typs))
        out.append(("relation", f"CREATE VIEW public.{ident(relname)} AS SELECT {select} "
                    f"WHERE public.trap_bool({lit('relation public.' + relname)});"))
        out.append(("trigger", f"CREATE TRIGGER trap INSTEAD OF INSERT OR UPDATE OR DELETE "
                    f"ON public.{ident(relname)} FOR EACH ROW EXECUTE FUNCTION public.trap_write();"))

    # the types named in casts: a domain of the same name, whose check is a trap
    for name in sorted(found["cast_types"]):
        if types.oid(name):
            out.append(("domain", f"CREATE DOMAIN public.{ident(name)} AS "
                        f"{types.sql(types.oid(name))} CHECK "
                        f"(public.trap_domain({lit('domain public.' + name)}, VALUE));"))
    return out, specs, [r[0] for r in rels]


TRAP_BASE = """
CREATE TABLE public.trap_calls (
    name text NOT NULL,
    who text NOT NULL DEFAULT CURRENT_USER,
    backend text,
    pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp());
GRANT INSERT ON public.trap_calls TO PUBLIC;
CREATE SEQUENCE public.trap_seq;
GRANT USAGE ON SEQUENCE public.trap_seq TO PUBLIC;
-- a rollback takes the row away, not the sequence's step nor the log line
CREATE FUNCTION public.trap_hit(what pg_catalog.text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.trap_seq');
    RAISE WARNING 'jobsched-trap: % called by %', what, CURRENT_USER;
    INSERT INTO public.trap_calls (name, backend)
        SELECT what, (SELECT a.backend_type FROM pg_catalog.pg_stat_activity a
                       WHERE a.pid = pg_catalog.pg_backend_pid());
END$$;
-- the traps of relations and domains
CREATE FUNCTION public.trap_bool(what pg_catalog.text) RETURNS pg_catalog.bool
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM public.trap_hit(what); RETURN NULL; END$$;
CREATE FUNCTION public.trap_domain(what pg_catalog.text, value anyelement)
    RETURNS pg_catalog.bool LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$BEGIN PERFORM public.trap_hit(what); RETURN NULL; END$$;
CREATE FUNCTION public.trap_write() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$BEGIN
    PERFORM public.trap_hit('relation public.' || TG_TABLE_NAME || ' ' || TG_OP);
    RETURN NULL;
END$$;
"""


# ---- helpers -------------------------------------------------------------

class Session(Queries):
    """A connection of its own (as hostile, or a careless superuser)."""

    def __init__(self, pg, user, search_path=None):
        self.conn = psycopg2.connect(host=pg.sockdir, port=pg.port, user=user, dbname=DBNAME)
        self.conn.autocommit = True
        if search_path:
            self.execute(f"SET search_path = {search_path}")

    def close(self):
        self.conn.close()


def wait_row(pg, job_id, what, predicate, timeout=20):
    return wait_for(f"job {job_id}: {what}",
                    lambda: (lambda j: j if j and predicate(j) else None)(pg.job(job_id)),
                    timeout=timeout)


TRAP_HELPERS = ["trap_hit", "trap_bool", "trap_domain", "trap_write"]


def drop_hostile(pg):
    """Everything the role owns, in batches (one transaction cannot lock
    tens of thousands of objects), then the role."""
    role = pg.value("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s", (HOSTILE,))
    if role is None:
        return
    pg.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
               " WHERE usename = %s", (HOSTILE,))
    typeref = ("(SELECT pg_catalog.format('%%I.%%I', tn.nspname, t.typname)"
               "   FROM pg_catalog.pg_type t"
               "   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace"
               "  WHERE t.oid = {})")
    statements = [r[0] for r in pg.query(
        "SELECT pg_catalog.format('DROP OPERATOR %%I.%%s (%%s, %%s)', n.nspname, o.oprname,"
        f"       coalesce({typeref.format('o.oprleft')}, 'NONE'),"
        f"       coalesce({typeref.format('o.oprright')}, 'NONE'))"
        "  FROM pg_catalog.pg_operator o"
        "  JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace"
        " WHERE o.oprowner = %s", (role,))]
    # aggregates before their state functions; the helpers go with DROP OWNED
    for kind, word, no_args in (("a", "AGGREGATE", "*"), ("f", "FUNCTION", "")):
        statements += [r[0] for r in pg.query(
            f"SELECT pg_catalog.format('DROP {word} %%I.%%I(%%s)', n.nspname, p.proname,"
            "       coalesce((SELECT pg_catalog.string_agg("
            f"                   {typeref.format('a.t')}, ', ' ORDER BY a.i)"
            "                   FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])"
            "                        WITH ORDINALITY a(t, i)), %s))"
            "  FROM pg_catalog.pg_proc p"
            "  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.proowner = %s AND p.prokind = %s AND p.proname <> ALL (%s)",
            (no_args, role, kind, TRAP_HELPERS))]
    for i in range(0, len(statements), 1000):
        pg.execute("BEGIN; " + " ".join(st + ";" for st in statements[i:i + 1000]) + " COMMIT;")
    pg.execute(f"DROP OWNED BY {HOSTILE}")
    pg.execute(f"DROP ROLE {HOSTILE}")


# ---- the test ------------------------------------------------------------

def test_nothing_a_user_creates_runs(pg, api):
    started = time.monotonic()
    # the test's own statements name pg_catalog first, whatever is planted
    pg.execute("SET search_path = pg_catalog, pg_temp")
    found = generate_lists()
    calls = sorted(f"{s}.{n}" if s else n for s, n in found["calls"])
    print(f"\n{found['statements']} statements and fragments in {', '.join(found['sources'])}")
    print(f"{len(calls)} calls of {len({n for _, n in found['calls']})} names: {' '.join(calls)}")
    print(f"{len(found['operators'])} operators: {' '.join(sorted(found['operators']))}")
    print(f"{len(found['prefix_operators'])} prefix operators: "
          f"{' '.join(sorted(found['prefix_operators']))}")
    print(f"types named in casts: {' '.join(sorted(found['cast_types']))}")
    # a parser that broke would find next to nothing
    assert found["statements"] >= 15
    assert len({n for _, n in found["calls"]}) >= 10
    assert len(found["operators"]) >= 6
    assert {"unnest", "now", "coalesce", "count"} <= {n for _, n in found["calls"]}
    assert {"=", "<>", "<=", "||"} <= found["operators"]

    drop_hostile(pg)            # a run that was killed may have left it
    db_setting = pg.value(
        "SELECT s FROM pg_catalog.pg_db_role_setting r, pg_catalog.unnest(r.setconfig) s"
        " WHERE r.setrole = 0 AND pg_catalog.starts_with(s, 'search_path=')"
        "   AND r.setdatabase = (SELECT oid FROM pg_catalog.pg_database"
        "                         WHERE datname = pg_catalog.current_database())")
    if db_setting == f"search_path={HOSTILE_PATH}":
        db_setting = None       # left by a run that was killed
    sessions = []
    try:
        pg.execute(f"CREATE ROLE {HOSTILE} LOGIN")
        pg.execute(f"GRANT CREATE ON SCHEMA public TO {HOSTILE}")
        pg.execute(f"GRANT USAGE ON SCHEMA jobsched TO {HOSTILE}")
        # the strongest position: public before pg_catalog, for every new session
        pg.execute(f"ALTER DATABASE {DBNAME} SET search_path = {HOSTILE_PATH}")

        hostile = Session(pg, HOSTILE)
        sessions.append(hostile)
        assert hostile.value("SHOW search_path") == HOSTILE_PATH
        assert not hostile.value("SELECT rolsuper FROM pg_catalog.pg_roles"
                                 " WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER")

        # ---- plant, as hostile ----
        t0 = time.monotonic()
        hostile.execute(TRAP_BASE)
        ddl, specs, relations = plant_sql(pg, found)
        for i in range(0, len(ddl), 1000):
            hostile.execute("BEGIN; " + "\n".join(s for _, s in ddl[i:i + 1000]) + "\nCOMMIT;")
        planted = {}
        for kind, _ in ddl:
            planted[kind] = planted.get(kind, 0) + 1
        print(f"planted {len(ddl)} objects in {time.monotonic() - t0:.1f} s: "
              + ", ".join(f"{n} {k}s" for k, n in sorted(planted.items()))
              + f"; argument types: {' '.join(specs)}; relations: {' '.join(relations)}")
        assert pg.value("SELECT count(*) FROM pg_catalog.pg_operator"
                        " WHERE oprowner = %s::pg_catalog.regrole", (HOSTILE,)) \
            == planted["operator"]

        # ---- the traps spring for a statement that resolves to them ----
        probes = [
            # inexact: no +(integer, numeric) in pg_catalog, even searched first
            ("public", "SELECT 1 + 1.5", "operator public.+(int4, numeric)"),
            (HOSTILE_PATH, "SELECT now()", "function public.now()"),
            (HOSTILE_PATH, "SELECT count(*) FROM (VALUES (1)) v", "aggregate public.count(*)"),
            (HOSTILE_PATH, "SELECT * FROM jobs", "relation public.jobs"),
            (HOSTILE_PATH, "SELECT '1'::text", "domain public.text"),
        ]
        for path, sql, label in probes:
            hostile.execute(f"SET search_path = {path}")
            hostile.execute(sql)
            assert pg.value("SELECT count(*) FROM public.trap_calls WHERE name = %s",
                            (label,)), (sql, label)
        hostile.execute(f"SET search_path = {HOSTILE_PATH}")
        hostile.execute("TRUNCATE public.trap_calls")
        seq_before = pg.value("SELECT last_value FROM public.trap_seq")
        log_start = len(pg.server_log())

        # ---- the worker starts afresh, under the database's search_path, and
        # plans every statement with the traps in place ----
        old_pid = pg.worker_pid()
        pg.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (old_pid,))
        wait_for("the worker to start again", lambda: pg.value(
            "SELECT worker_pid FROM jobsched.status WHERE listening AND worker_pid <> %s",
            (old_pid,)), timeout=40, interval=0.2)
        pid = pg.worker_pid()

        error = None
        try:
            lifecycle(pg, api, hostile, sessions, pid)
        except Exception as e:     # noqa: BLE001  -- reported with the traps below
            error = e

        rows = pg.query("SELECT name, who, backend, pid, at FROM public.trap_calls ORDER BY at")
        steps = pg.value("SELECT last_value FROM public.trap_seq") - seq_before
        log = [line for line in pg.server_log()[log_start:].splitlines() if TRAP_MARK in line]
        if rows or steps or log:
            print(f"{steps} trap calls; rows of public.trap_calls:")
            for r in rows[:50]:
                print("  ", r)
            print("the server log:", *log[:30], sep="\n  ")
            raise AssertionError(
                f"objects planted by {HOSTILE} ran {max(steps, len(rows), len(log))} times,"
                f" first {rows[0][0] if rows else log[0]}") from error
        if error:
            raise error
        print(f"no planted object ran; the test took {time.monotonic() - started:.1f} s")
    finally:
        for s in sessions:
            s.close()
        if db_setting:
            pg.execute(f"ALTER DATABASE {DBNAME} SET search_path = "
                       + db_setting.split("=", 1)[1])
        else:
            pg.execute(f"ALTER DATABASE {DBNAME} RESET search_path")
        t0 = time.monotonic()
        drop_hostile(pg)
        print(f"dropped the traps and the role in {time.monotonic() - t0:.1f} s")
        pg.execute("RESET search_path")


def lifecycle(pg, api, hostile, sessions, pid):
    """Every path of a job through the worker, with the user's part played
    by the hostile role and the rest by the API server's controls."""
    def submit(params=None, run_after=None):
        if run_after:
            return hostile.value("SELECT jobsched.submit(%s, %s, 0, %s)",
                                 ("echo", json.dumps(params), run_after))
        return hostile.value("SELECT jobsched.submit(%s, %s)",
                             ("echo", json.dumps(params if params is not None
                                                 else {"args": ["hi"]})))

    def submitted(params=None):
        return pg.wait_state(submit(params), "submitted")

    # succeeds: submitted, running, succeeded
    ok = submitted()
    assert ok["owner"] == HOSTILE
    drive(api, ok, phase="running")
    pg.wait_state(ok["id"], "running", timeout=5)
    drive(api, ok, phase="succeeded")
    ok = pg.wait_state(ok["id"], "succeeded", timeout=5)
    manifest = hostile.value("SELECT jobsched.render(%s)", (ok["id"],))
    assert manifest["metadata"]["name"] == ok["k8s_name"]
    assert hostile.value("SELECT jobsched.job_name(%s, %s)", ("echo", ok["id"])) == ok["k8s_name"]

    # cannot be rendered: failed by the worker, an error from render()
    bad = submit({})
    failed = pg.wait_state(bad, "failed")
    assert "args" in failed["last_error"]
    with pytest.raises(psycopg2.Error) as err:
        hostile.value("SELECT jobsched.render(%s)", (bad,))
    assert err.value.pgcode == "22023"

    # the Job fails (with the pod's details), then runs again as run 1
    doomed = submitted()
    drive(api, doomed, phase="failed", reason="BackoffLimitExceeded",
          message="Job has reached the specified backoff limit",
          pod_reason="OOMKilled", exit_code=137)
    pg.wait_state(doomed["id"], "failed", timeout=5)
    wait_row(pg, doomed["id"], "the pod's details", lambda j: "OOMKilled" in j["last_error"])
    assert hostile.value("SELECT jobsched.retry(%s)", (doomed["id"],)) == 1
    again = wait_row(pg, doomed["id"], "run 1 submitted",
                     lambda j: j["run"] == 1 and j["state"] == "submitted")
    assert again["k8s_name"] == hostile.value("SELECT jobsched.job_name(%s, %s, %s)",
                                              ("echo", doomed["id"], 1))
    assert again["k8s_name"] != doomed["k8s_name"]
    drive(api, again, phase="succeeded")
    pg.wait_state(doomed["id"], "succeeded", timeout=5)

    # cancelled while running: the worker deletes the Job
    running = submitted()
    drive(api, running, phase="running")
    pg.wait_state(running["id"], "running", timeout=5)
    assert hostile.value("SELECT jobsched.cancel(%s)", (running["id"],)) == "cancelling"
    cancelled = pg.wait_state(running["id"], "cancelled", timeout=5)
    assert cancelled["k8s_deleted_at"] is not None
    assert server_job(api, running["k8s_name"]) is None

    # cancelled while pending (not due for a long time: the worker's timer
    # statements see it)
    later = submit({"args": []}, run_after="2999-01-01T00:00:00Z")
    assert pg.job(later)["state"] == "pending"
    assert hostile.value("SELECT jobsched.cancel(%s)", (later,)) == "cancelled"

    # a 503 to the create: backoff, then submitted
    api.fault(mode="status", status=503, methods=["POST"], count=1)
    flaky = submitted()
    assert flaky["retryable_failures"] >= 1 or flaky["attempts"] >= 2, flaky

    # Jobs deleted behind the worker's back: seen by the watch, and by a relist
    gone = submitted()
    drive(api, gone, phase="running")
    pg.wait_state(gone["id"], "running", timeout=5)
    api.call("DELETE", f"/jobs/{gone['k8s_namespace']}/{gone['k8s_name']}")
    gone = pg.wait_state(gone["id"], "failed", timeout=5)
    assert gone["last_error"] == "the Job was deleted before it finished"
    missed = submitted()
    delete_behind_the_watch(api, missed)
    missed = pg.wait_state(missed["id"], "failed", timeout=15)
    assert missed["last_error"] == "the Job was deleted before it finished"

    # a job queued by a plain INSERT
    inserted = hostile.value("INSERT INTO jobsched.jobs (type, params) VALUES (%s, %s)"
                             " RETURNING id", ("echo", json.dumps({"args": []})))
    pg.wait_state(inserted, "submitted")

    # cleanup: an old finished Job and an old active one
    age(api, ok)
    age(api, flaky)
    before = pg.value("SELECT last_cleanup_at FROM jobsched.status")
    pg.set_config(cleanup_interval="1s")
    deleted = wait_for("a cleanup", lambda: pg.query(
        "SELECT last_cleanup_jobs_deleted FROM jobsched.status"
        " WHERE last_cleanup_at > coalesce(%s::timestamptz, '-infinity')", (before,)), timeout=10)
    assert deleted[0][0] == 2
    assert pg.job(ok["id"])["k8s_deleted_at"] is not None
    assert pg.job(ok["id"])["state"] == "succeeded"
    wait_row(pg, flaky["id"], "failed by cleanup",
             lambda j: j["state"] == "failed" and "still active" in (j["last_error"] or ""))
    assert server_job(api, ok["k8s_name"]) is None

    # what a user reads
    status = dict(zip(("worker_pid", "succeeded", "failed", "cancelled"), hostile.query(
        "SELECT worker_pid, succeeded, failed, cancelled FROM jobsched.status")[0]))
    assert status == {"worker_pid": pid, "succeeded": 2, "failed": 4, "cancelled": 2}, status
    mine = {r[0]: r[1] for r in hostile.query("SELECT id, state FROM jobsched.jobs")}
    assert mine == {r["id"]: r["state"] for r in pg.jobs()}
    assert hostile.value("SELECT worker_pid FROM jobsched.worker_state()") == pid

    # a superuser who put public first calls what only it may call
    careless = Session(pg, "postgres", HOSTILE_PATH)
    sessions.append(careless)
    assert careless.value("SELECT jobsched.purge(%s)", ("1000 years",)) == 0
    assert careless.value("SELECT jobsched.render(%s)", (doomed["id"],))["metadata"]["name"] \
        == again["k8s_name"]
    assert careless.query("SELECT instance FROM jobsched.status")[0][0]
    # the worker never stopped
    assert pg.worker_pid() == pid
