"""ORM queries built and compiled once per process, then run as SQL with each call's values; and
new rows inserted with an INSERT written once per model and row count.

Building a query (filters, subqueries, annotations) and compiling it costs the ORM a millisecond or
more of CPU per call on the payment path, several times what PostgreSQL spends answering it. A
`CompiledSelect` builds its QuerySet once, with stand-in values ("marks") where the call's values go,
compiles it, and finds each mark in the compiled parameters. Each call then runs that SQL with the
marks replaced, and reads the rows as the ORM reads them: its compiler's columns and converters,
`Model.from_db`, annotations as attributes, and `select_related` objects one level deep, set on both
sides as the ORM sets them. A JSON column is read by orjson where it reads the value json does
(`_json_reader`).

A query whose marks are not found once each, or that the reader does not handle (deeper
select_related, `values()`, a combinator), is refused when first compiled: the caller's tests fail
rather than a call reading wrong rows.
"""

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from threading import Lock
from uuid import UUID

import orjson
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.db.transaction import TransactionManagementError
from psycopg import _queries as _psycopg_queries
from psycopg.pq import TransactionStatus

from pgi.prepared_statements import result_types_fixed


@dataclass(frozen=True)
class _Part:
    model: type[Model]
    columns: slice
    attnames: list[str]
    pk_at: int  # the primary key's place among attnames
    setters: tuple | None  # (local_setter, remote_setter) of a select_related object; None: the row's own


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    at: tuple[int, ...]  # where, in params, each mark's value goes
    parts: tuple[_Part, ...]
    annotations: tuple[tuple[str, int], ...]  # (attribute, column)
    converters: tuple[tuple[int, tuple, object], ...]  # (column, functions, expression)
    for_update: bool


class CompiledSelect:
    """`build(*marks)` returns the QuerySet; `marks` are values that occur nowhere else in it."""

    def __init__(self, build: Callable[..., QuerySet], marks: Sequence[object]):
        self._build = build
        self._marks = tuple(marks)
        self._compiled: _Compiled | None = None
        self._lock = Lock()

    def _compile(self) -> _Compiled:
        queryset = self._build(*self._marks)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        params = tuple(params)
        info = compiler.klass_info
        if info is None or queryset.query.combinator or queryset._fields is not None:
            raise ValueError("CompiledSelect reads model rows of one query only")
        if any(params.count(mark) != 1 for mark in self._marks):
            raise ValueError("each mark must occur once in the compiled parameters")
        columns = compiler.select
        parts = [_part(info, columns, setters=None)]
        for related in info.get("related_klass_infos", ()):
            if related.get("related_klass_infos"):
                raise ValueError("CompiledSelect reads select_related objects one level deep")
            parts.append(_part(related, columns, setters=(related["local_setter"], related["remote_setter"])))
        converters = compiler.get_converters([column[0] for column in columns])
        return _Compiled(
            sql=sql,
            params=params,
            at=tuple(params.index(mark) for mark in self._marks),
            parts=tuple(parts),
            annotations=tuple(compiler.annotation_col_map.items()),
            converters=tuple(
                (position, tuple(_json_reader(function) for function in functions), expression)
                for position, (functions, expression) in converters.items()
            ),
            for_update=bool(queryset.query.select_for_update),
        )

    def compiled(self) -> _Compiled:
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self._compile()
        return self._compiled

    def rows(self, *values, using: str = DEFAULT_DB_ALIAS) -> list[Model]:
        compiled = self.compiled()
        connection = connections[using]
        if compiled.for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(compiled.params)
        for position, value in zip(compiled.at, values, strict=True):
            params[position] = value
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            fetched = cursor.fetchall()
        return [_instance(compiled, list(row), connection) for row in fetched]


# Nineteen digits in a row: a number that may lie beyond 64 bits, which orjson reads as a float where
# json reads an int (-9223372036854775809, 18446744073709551616). Such a text is read by json.
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _json_reader(function):
    """`function`, or for Django's own JSONField without a decoder, its `from_db_value` reading the
    column's text with orjson: a tenth of json's CPU, about 5 % of a list page of 50 payments.

    orjson reads JSON as json does (tests/test_compiled.py compares them over arbitrary values read
    back from PostgreSQL) but for whole numbers past 64 bits, which it makes floats: a text with
    nineteen digits in a row goes to the field's own method, as does a text orjson refuses (json
    reads 1e400 as inf) and a value that is not text."""
    field = getattr(function, "__self__", None)
    if (
        type(field) is not models.JSONField
        or field.decoder is not None
        or getattr(function, "__func__", None) is not models.JSONField.from_db_value
    ):
        return function

    def from_db_value(value, expression, connection):
        if type(value) is str and _LONG_DIGITS.search(value) is None:
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return function(value, expression, connection)

    return from_db_value


def _part(info: dict, columns: list, *, setters) -> _Part:
    first, last = info["select_fields"][0], info["select_fields"][-1] + 1
    attnames = [column[0].target.attname for column in columns[first:last]]
    model = info["model"]
    return _Part(
        model=model,
        columns=slice(first, last),
        attnames=attnames,
        pk_at=attnames.index(model._meta.pk.attname),
        setters=setters,
    )


def _instance(compiled: _Compiled, row: list, connection) -> Model:
    for position, functions, expression in compiled.converters:
        value = row[position]
        for convert in functions:
            value = convert(value, expression, connection)
        row[position] = value
    own, *related = compiled.parts
    instance = own.model.from_db(connection.alias, own.attnames, row[own.columns])
    for part in related:
        values = row[part.columns]
        # As the ORM's RelatedPopulator: a missing (outer-joined) object is None.
        obj = None if values[part.pk_at] is None else part.model.from_db(connection.alias, part.attnames, values)
        local_setter, remote_setter = part.setters
        local_setter(instance, obj)
        if obj is not None:
            remote_setter(obj, instance)
    for alias, position in compiled.annotations:
        setattr(instance, alias, row[position])
    return instance


# insert_rows' statements: (model, rows, database makes the key, database vendor) -> (SQL, value plan).
_INSERTS: dict[tuple, tuple[str, tuple]] = {}


def insert_rows(objs: list[Model], *, using: str = DEFAULT_DB_ALIAS) -> list[Model]:
    """`Model.objects.bulk_create(objs)` for a few new rows of one model, without the ORM's work per
    call (a query object, its compiler, the columns as arrays): one INSERT … VALUES … written once
    per model and row count, the values prepared by each field as the ORM prepares them (defaults,
    `auto_now_add`, `get_db_prep_save`), a primary key made by the database set on the objects.

    Like bulk_create, and unlike save() and create(), it sends no signals: for models no receiver
    listens to. All objects are new, of one model without parents, and all have their primary key or
    none has.
    """
    if not objs:
        return objs
    model = type(objs[0])
    opts = model._meta
    if opts.parents or any(type(obj) is not model for obj in objs):
        raise ValueError("insert_rows takes new rows of one model without parents")
    pk = opts.pk
    connection = connections[using]
    _keys_first(connection, objs)
    for obj in objs:
        if obj.pk is None:
            obj.pk = pk.get_pk_value_on_save(obj)  # a default (an id made in Python), else None
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    made_by_database = objs[0].pk is None
    if any((obj.pk is None) != made_by_database for obj in objs):
        raise ValueError("insert_rows: all objects have their primary key, or none has")
    key = (model, len(objs), made_by_database, connection.vendor)
    if key not in _INSERTS:
        sql, fields = _insert_sql(model, len(objs), made_by_database, connection)
        _INSERTS[key] = sql, _value_plan(fields, connection)
    sql, plan = _INSERTS[key]
    params = [value for obj in objs for value in _db_values(obj, plan, add=True, connection=connection)]
    batch = getattr(connection, _BATCH, None)
    if batch is not None and (not made_by_database or pk.get_internal_type() in _INTEGER_KEYS):
        batch.insert(sql, params, objs, made_by_database, using)
        return objs
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        made = cursor.fetchall() if made_by_database else ()
    _inserted(objs, [value for (value,) in made], using)
    return objs


def _inserted(objs: list[Model], made: list, using: str) -> None:
    """The rows are in the database: each gets its primary key (when the database made it) and
    the state of a saved object."""
    for obj, value in zip(objs, made, strict=False):
        setattr(obj, obj._meta.pk.attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using


def _db_values(obj: Model, plan: tuple, *, add: bool, connection) -> list:
    """The fields' values of obj as save() sends them: pre_save (defaults, auto_now), then
    get_db_prep_save, except where `plan` (_value_plan) knows what that gives. Values only: an
    expression is refused."""
    values = []
    append = values.append
    for field, pre_save, kinds in plan:
        value = field.pre_save(obj, add) if pre_save else getattr(obj, field.attname)
        if kinds is not None:
            if value is None:
                append(None)
                continue
            convert = kinds.get(type(value), _OWN)
            if convert is None:
                append(value)
                continue
            if convert is not _OWN:
                value_sent = convert(value)
                if value_sent is not _OWN:
                    append(value_sent)
                    continue
        value = field.get_db_prep_save(value, connection=connection)
        if hasattr(value, "resolve_expression"):
            raise ValueError("insert_rows and update_row take values, not expressions")
        append(value)
    return values


# _value_plan's: what a field of these exact classes sends PostgreSQL (psycopg 3) for a value of an
# exact type, as its own get_db_prep_save computes it (Django 5.2): the value itself (None), the
# value wrapped (a callable), or, where a callable returns _OWN, what the field's methods say (a
# naive datetime's warning, a NaN's ValidationError, a foreign key's ""). None is sent as None by
# all of them. Any other class or type goes through the field's own methods.
# tests/test_compiled.py compares the two for every field of PGI's models.
_OWN = object()
_TEXT_FIELDS = (models.CharField, models.TextField)
_INTEGER_FIELDS = (
    models.IntegerField, models.BigIntegerField, models.SmallIntegerField,
    models.PositiveIntegerField, models.PositiveBigIntegerField, models.PositiveSmallIntegerField,
)
_AUTO_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField)
_DATETIME_FIELDS = (models.DateTimeField, models.DateField)


def _finite(value):
    return value if value.is_finite() else _OWN


def _aware(value):
    return value if value.utcoffset() is not None else _OWN


def _not_empty(value):
    return value if value != "" else _OWN


def _kinds(field: Field, connection) -> dict | None:
    cls = type(field)
    if cls in _TEXT_FIELDS:
        return {str: None}
    if cls in _AUTO_FIELDS:
        return {int: None}
    if cls in _INTEGER_FIELDS:
        wrap = getattr(connection.ops, "integerfield_type_map", {}).get(field.get_internal_type())
        return None if wrap is None else {int: wrap}
    if cls is models.BooleanField:
        return {bool: None}
    if cls is models.DecimalField:
        return {Decimal: _finite}
    if cls is models.DateTimeField:
        return {datetime: _aware}
    if cls is models.DateField:
        return {date: None}
    if cls is models.UUIDField:
        return {UUID: None}
    if cls in (models.ForeignKey, models.OneToOneField):
        target = _kinds(field.target_field, connection)
        if target is None:
            return None
        return {kind: (_not_empty if kind is str else convert) for kind, convert in target.items()}
    return None


def _value_plan(fields: list[Field], connection) -> tuple:
    """For each field: (field, whether its pre_save does more than read the attribute, its kinds)."""
    known = connection.vendor == "postgresql"
    return tuple(
        (
            field,
            isinstance(field, _DATETIME_FIELDS) or type(field).pre_save is not Field.pre_save,
            _kinds(field, connection) if known else None,
        )
        for field in fields
    )


def _insert_sql(model: type[Model], rows: int, made_by_database: bool, connection) -> tuple[str, list[Field]]:
    opts = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in opts.local_concrete_fields if not f.generated and not (made_by_database and f.primary_key)]
    if any(hasattr(f, "get_placeholder") for f in fields):
        raise ValueError("insert_rows: a field with its own placeholder")
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * rows)}"
    )
    if made_by_database:
        sql += f" RETURNING {quote(opts.db_table)}.{quote(opts.pk.column)}"
    return sql, fields


# psycopg keeps the conversion of a statement's placeholders (a parse of its text) for statements of
# up to 50 parameters; writes_together's statements have more (about 70 for a payment's first commit).
# Raised to 128: still a bound, and the same statements recur, so its cache of 128 entries holds them.
# tests/test_compiled.py checks that psycopg still has this setting.
_psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(_psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, 128)


# update_row's statements: (model, field names, database vendor) -> (SQL, value plan).
_UPDATES: dict[tuple, tuple[str, tuple]] = {}


def update_row(obj: Model, fields: list[str] | tuple[str, ...], *, using: str | None = None) -> None:
    """`obj.save(update_fields=fields)` without the ORM's work per call: one UPDATE … WHERE pk,
    written once per model and set of fields, the values prepared by each field as save() prepares
    them (`auto_now` included). Like save(), a row that no longer exists is a DatabaseError.

    Unlike save(), it sends no signals: for models no receiver listens to.
    """
    model = type(obj)
    using = using or obj._state.db or DEFAULT_DB_ALIAS
    connection = connections[using]
    names = tuple(sorted(set(fields)))  # as save(): each once, in any order
    key = (model, names, connection.vendor)
    if key not in _UPDATES:
        sql, targets = _update_sql(model, names, connection)
        _UPDATES[key] = sql, _value_plan(targets, connection)
    sql, plan = _UPDATES[key]
    _keys_first(connection, [obj])
    obj._prepare_related_fields_for_save(operation_name="save")
    params = _db_values(obj, plan, add=False, connection=connection)
    params.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
    batch = getattr(connection, _BATCH, None)
    if batch is not None:
        batch.update(sql, params, (model, obj.pk))
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise _not_updated()


def _not_updated() -> DatabaseError:
    return DatabaseError("Save with update_fields did not affect any rows.")


def _update_sql(model: type[Model], names: tuple[str, ...], connection) -> tuple[str, list[Field]]:
    opts = model._meta
    quote = connection.ops.quote_name
    targets = [opts.get_field(name) for name in names]
    if any(not f.concrete or f.primary_key or f.generated or f.model is not model or hasattr(f, "get_placeholder")
           for f in targets):
        raise ValueError(f"update_row cannot write {names} of {model.__name__}")
    sets = ", ".join(f"{quote(f.column)} = %s" for f in targets)
    sql = f"UPDATE {quote(opts.db_table)} SET {sets} WHERE {quote(opts.db_table)}.{quote(opts.pk.column)} = %s"
    return sql, targets


# writes_together ----------------------------------------------------------------------------

_IDLE = TransactionStatus.IDLE
_BATCH = "pgi_writes_together"  # the connection's attribute holding the block's waiting writes
_INTEGER_KEYS = frozenset({"AutoField", "BigAutoField", "SmallAutoField"})


@contextmanager
def writes_together(using: str = DEFAULT_DB_ALIAS, *, savepoint: bool = True) -> Iterator[None]:
    """`transaction.atomic(using, savepoint)` whose `insert_rows` and `update_row` calls, on PostgreSQL,
    reach the database together: as one statement, each write a data-modifying `WITH` part of it
    (PostgreSQL runs every part to completion), when the block ends or before any other statement
    on the connection, whichever comes first. The payment path writes five rows in its first
    commit and four in its answer's; each statement costs a round trip, its parsing and planning,
    and Django's and psycopg's work per call, more than its row.

    What the block reads (any statement, the ORM's included) sees every write made before it in
    the block: the waiting writes go first. Within one statement, parts cannot see each other's
    rows, so a row already waiting is written before an update of it. Foreign keys between the
    rows hold: Django's are checked at commit. What changes:
    - a primary key made by the database is set on the object when its statement has run, not
      when insert_rows returns. insert_rows and update_row send the waiting writes first when
      they meet such an object, or a row that refers to one; the ORM's save() and create() do not,
      and refuse the row as they refuse any reference to an unsaved object (ValueError);
    - an error of any write (a unique key, an update that found no row) is raised there too, by
      the statement that carries it; the block's writes are undone as atomic undoes them.
    A savepoint inside the block (a nested atomic) is a statement too: the writes before it go
    first, and rolling back to it undoes what the block wrote after it, waiting or not.
    A block that is its whole transaction and sends nothing but inserts is one statement, which
    PostgreSQL runs as its own transaction: psycopg then sends neither BEGIN nor COMMIT (_alone).
    Elsewhere than PostgreSQL, and inside another such block, it is the atomic block alone.
    tests/test_compiled.py compares what a block writes with what the same calls write one by one.
    """
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using, savepoint=savepoint):
        if connection.vendor != "postgresql" or getattr(connection, _BATCH, None) is not None:
            yield
            return
        batch = _WriteBatch(connection)
        setattr(connection, _BATCH, batch)
        # First of the connection's wrappers: another may run its statement without calling the
        # rest (pgi.prepared_statements does, inside transactions).
        connection.execute_wrappers.insert(0, batch.before_statement)
        try:
            yield
            if connection.needs_rollback:  # set_rollback(True): the block is undone, its waiting writes with it
                batch.writes.clear()
            else:
                batch.flush(whole_transaction=outermost)
        finally:
            connection.execute_wrappers.remove(batch.before_statement)
            delattr(connection, _BATCH)


def _keys_first(connection, objs: list[Model]) -> None:
    """In a writes_together block, the waiting writes go first when one of `objs` is, or refers to,
    a row waiting for the key the database makes: the key is then there to write."""
    batch = getattr(connection, _BATCH, None)
    if batch is None or not batch.unkeyed:
        return
    model = type(objs[0])
    relations = _RELATIONS.get(model)
    if relations is None:
        relations = _RELATIONS[model] = tuple(f for f in model._meta.concrete_fields if f.is_relation)
    waiting = {type(obj) for obj in batch.unkeyed.values()}
    if model not in waiting and not any(field.related_model in waiting for field in relations):
        return
    for obj in objs:
        if id(obj) in batch.unkeyed or any(
            field.is_cached(obj) and id(field.get_cached_value(obj)) in batch.unkeyed for field in relations
        ):
            batch.flush()
            return


_RELATIONS: dict[type[Model], tuple[Field, ...]] = {}  # _keys_first's: each model's foreign keys


@contextmanager
def _alone(connection) -> Iterator[None]:
    """Where a transaction consists of one statement that inserts, run it as PostgreSQL runs any
    statement outside a transaction: as its own, all of it or none of it. That saves the BEGIN
    and the COMMIT, two round trips. psycopg sends BEGIN only before a transaction's first statement,
    and COMMIT only when one was sent (the atomic block's commit then has nothing to do); so this
    applies when nothing was sent yet, and the transaction asks for nothing BEGIN would say (an
    isolation level, read only, deferrable)."""
    raw = connection.connection
    if (
        raw.autocommit
        or raw.info.transaction_status != _IDLE
        or raw.isolation_level is not None
        or raw.read_only is not None
        or raw.deferrable is not None
    ):
        yield
        return
    raw.autocommit = True
    try:
        yield
    finally:
        raw.autocommit = False


class _WriteBatch:
    """The writes waiting in a writes_together block: each (SQL, parameters, what to do once run)."""

    def __init__(self, connection):
        self.connection = connection
        self.writes: list[tuple[str, list, Callable[[list], None]]] = []
        self.rows: set[tuple] = set()  # (model, primary key) of each row waiting to be written
        self.unkeyed: dict[int, Model] = {}  # the objects waiting for a key the database makes, by id()

    def insert(self, sql: str, params: list, objs: list[Model], made_by_database: bool, using: str) -> None:
        def done(values: list) -> None:
            if made_by_database and len(values) != len(objs):
                raise DatabaseError(f"insert_rows: {len(values)} keys made for {len(objs)} rows")
            _inserted(objs, values, using)

        self.writes.append((sql, params, done))
        if made_by_database:
            self.unkeyed.update((id(obj), obj) for obj in objs)
        else:
            self.rows.update((type(obj), obj.pk) for obj in objs)

    def update(self, sql: str, params: list, row: tuple) -> None:
        if row in self.rows:  # one statement cannot write a row twice, nor update a row it inserts
            self.flush()

        def done(values: list) -> None:
            if values != [1]:
                raise _not_updated()

        self.writes.append((sql + " RETURNING 1", params, done))
        self.rows.add(row)

    def before_statement(self, execute, sql, params, many, context):
        if self.writes:
            self.flush()
        return execute(sql, params, many, context)

    def flush(self, *, whole_transaction: bool = False) -> None:
        """Send the waiting writes. `whole_transaction`: at the end of a block that is its
        transaction; when nothing else was sent in it, the statement is the whole transaction."""
        writes, self.writes, self.rows, self.unkeyed = self.writes, [], set(), {}
        if not writes:
            return
        # Only inserts: an update's "no row found" is told after the statement has run, too late
        # for a statement that commits as it ends.
        inserts_only = all(not sql.startswith("UPDATE ") for sql, _, _ in writes)
        with _alone(self.connection) if whole_transaction and inserts_only else nullcontext():
            self._send(writes)

    def _send(self, writes: list) -> None:
        if len(writes) == 1:  # the statement insert_rows or update_row would have run
            sql, params, done = writes[0]
            with self.connection.cursor() as cursor:
                cursor.execute(sql, params)
                done([value for (value,) in cursor.fetchall()] if cursor.description else [])
            return
        parts, results, params = [], [], []
        for n, (sql, values, _) in enumerate(writes):
            parts.append(f"w{n} AS ({sql})")
            params.extend(values)
            if " RETURNING " in sql:  # the keys an insert made, in order; a 1 for each row an update found
                results.append(f"SELECT {n}, v::bigint FROM w{n} AS r(v)")
        statement = "WITH " + ", ".join(parts) + " " + (
            " UNION ALL ".join(results) if results else "SELECT NULL::int, NULL::bigint WHERE false"
        )
        # Its result is (integer, bigint) whatever the tables' columns become: it may be prepared
        # inside a transaction (pgi.prepared_statements).
        result_types_fixed(statement)
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            returned = cursor.fetchall()
        by_write: dict[int, list] = {}
        for n, value in returned:
            by_write.setdefault(n, []).append(value)
        for n, (_, _, done) in enumerate(writes):
            done(by_write.get(n, []))


class LoadedWithoutInit:
    """A mixin, put before `models.Model`: the model's rows, read whole from the database, become
    instances without `Model.__init__`.

    `__init__` sets each field through `setattr` and sends `pre_init` and `post_init`; for a page of
    50 payments that was about a tenth of the list's CPU. `from_db` (Django's documented hook for
    loading) here fills the instance's `__dict__` with the columns' values directly, which is what
    `__init__` leaves there for a row with every field. A row with deferred fields (`only()`,
    `defer()`), or a model that a receiver of either signal listens to, is loaded by the ORM's own
    `from_db`. tests/test_compiled.py compares the two.
    """

    @classmethod
    def from_db(cls, db, field_names, values):
        attnames = _ATTNAMES.get(cls)
        if attnames is None:
            attnames = _ATTNAMES[cls] = tuple(f.attname for f in cls._meta.concrete_fields)
        if len(values) != len(attnames) or (
            # No receiver of either signal at all (PGI has none): no need to ask about this model.
            (pre_init.receivers or post_init.receivers)
            and (pre_init.has_listeners(cls) or post_init.has_listeners(cls))
        ):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        state = ModelState()
        state.adding = False
        state.db = db
        fields = new.__dict__
        fields["_state"] = state
        fields.update(zip(attnames, values))
        return new


_ATTNAMES: dict[type[Model], tuple[str, ...]] = {}
