"""Where a run's records live: a SQL database, through SQLAlchemy.

One store holds one run: its settings, one row per (method, trial) *unit*
(the last committed cycle, the labeled indices in the order they were
labeled, the name and SHA-256 of the unit's checkpoint, and which worker
holds it since when), and one row per committed cycle with its record. The
default store is an SQLite file in the output directory (nothing to install
or start); any database SQLAlchemy reaches by URL works too, such as a
PostgreSQL server shared by the workers of several machines. All tables are
prefixed ``crtcl_``, so a database may hold other tables beside them.

Several worker processes can use one store at once. A worker *claims* the
next unit nobody holds with one conditional ``UPDATE`` (the row changes only
if it is still free, or held by a worker whose heartbeat is older than the
timeout), keeps its claim alive with a heartbeat, and commits each cycle's
record, labeled set and checkpoint reference in one transaction that
succeeds only while it still holds the unit and the unit is at the previous
cycle: a worker presumed dead that wakes up cannot overwrite the work of
the one that took its unit over. This is the scheme of Optuna's RDB storage
(a trial's state changes only by a conditional update in a transaction).
On SQLite every transaction takes the database's write lock at its start
(``BEGIN IMMEDIATE``), so two transactions never interleave.
"""

import json
import math
import os
import socket
import time
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "RunStore", "StoreError", "LostClaimError", "default_url",
           "worker_alive"]

#: Version of the tables' layout; a store written by a newer release is refused.
SCHEMA_VERSION = 1

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PREFIX = "crtcl_"


class StoreError(ValueError):
    """A store that cannot be used: damaged, foreign, or from a newer release."""


class LostClaimError(RuntimeError):
    """This worker no longer holds the unit it is working on (another worker
    took it over after this one's heartbeat went stale)."""


def default_url(output_dir):
    """The URL of the default store: ``runs.sqlite3`` in ``output_dir``.

    Parameters
    ----------
    output_dir : str or path

    Returns
    -------
    str
    """
    return "sqlite:///" + str(Path(output_dir).resolve() / "runs.sqlite3")


def _tables():
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text
    metadata = MetaData()
    meta = Table(_PREFIX + "meta", metadata,
                 Column("key", String(64), primary_key=True),
                 Column("value", Text, nullable=False))
    units = Table(_PREFIX + "units", metadata,
                  Column("method", String(200), primary_key=True),
                  Column("trial", Integer, primary_key=True),
                  Column("position", Integer, nullable=False),
                  Column("cycle", Integer, nullable=False),
                  Column("done", Boolean, nullable=False),
                  Column("labeled", Text, nullable=False),
                  Column("checkpoint", String(255)),
                  Column("checkpoint_sha256", String(64)),
                  Column("worker", String(200)),
                  Column("heartbeat", Float))
    records = Table(_PREFIX + "records", metadata,
                    Column("method", String(200), primary_key=True),
                    Column("trial", Integer, primary_key=True),
                    Column("cycle", Integer, primary_key=True),
                    Column("data", Text, nullable=False))
    return metadata, meta, units, records


def worker_alive(worker):
    """Whether a worker (``host:pid:token``) may be alive.

    A worker of this host whose process no longer exists is dead at once
    (killed, crashed); of other hosts only the heartbeat tells.

    Parameters
    ----------
    worker : str

    Returns
    -------
    bool
    """
    parts = str(worker).rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OverflowError):
        return True
    except PermissionError:  # another user's live process
        return True
    return True


def _json_constant(name):
    # every NaN of the records is the one object math.nan: records holding NaN (an
    # estimate a method cannot give) compare equal, as Python's containers compare
    # identical objects, here and in load_results
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def _json_dumps(obj):
    # records may hold NaN (no critic step, no estimate): keep them as JSON's NaN token
    return json.dumps(obj, separators=(",", ":"))


def _held(unit, timeout, now):
    """Whether a live worker holds ``unit``: a recent heartbeat, from a worker that
    is not known dead."""
    return (unit["worker"] is not None and unit["heartbeat"] is not None
            and now - unit["heartbeat"] < timeout and worker_alive(unit["worker"]))


class RunStore:
    """The database of one run.

    Parameters
    ----------
    url : str
        An SQLAlchemy database URL: ``sqlite:///path/to/file`` or
        ``postgresql://user:password@host/database``, for example.

    Notes
    -----
    Nothing is created or written until :meth:`create` is called: opening
    a store and reading it (:meth:`status`) leaves an absent SQLite file
    absent.
    """

    def __init__(self, url):
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        from sqlalchemy.pool import NullPool
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise StoreError(f"{url!r} is not a database URL (such as "
                             "sqlite:///path/runs.sqlite3 or "
                             "postgresql://user@host/database)") from None
        self.sqlite = self.url.get_backend_name() == "sqlite"
        if self.sqlite and self.url.database in (None, "", ":memory:"):
            raise StoreError(f"{url!r}: an SQLite store must be a file that every worker "
                             "can open, not an in-memory database")
        kwargs = {}
        if self.sqlite:
            # one connection per use: the heartbeat thread and the main thread never
            # share one; a lock waits up to a minute instead of failing at once
            kwargs = dict(poolclass=NullPool, connect_args={"timeout": 60})
        else:
            kwargs = dict(pool_pre_ping=True)
        try:
            self.engine = create_engine(self.url, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            hint = (" (pip install sklearn-crtcl[postgresql] installs the PostgreSQL driver, psycopg)"
                    if self.url.get_backend_name() == "postgresql" else "")
            raise StoreError(f"cannot open the store {self.describe()}: {exc}{hint}") from None
        if self.sqlite:
            @event.listens_for(self.engine, "connect")
            def _connect(dbapi_connection, connection_record):
                dbapi_connection.isolation_level = None  # transactions are ours

            @event.listens_for(self.engine, "begin")
            def _begin(connection):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        self.metadata, self.meta, self.units, self.records_table = _tables()

    # ------------------------------------------------------------------ reading
    def describe(self):
        """The store for messages: the SQLite file, or the URL without its password.

        Returns
        -------
        str
        """
        if self.sqlite:
            return str(self.url.database)
        return self.url.render_as_string(hide_password=True)

    def _damaged(self, exc, what="read"):
        detail = getattr(exc, "orig", None) or exc
        return StoreError(f"the store {self.describe()} cannot be {what}: {detail}. It is "
                          "damaged, locked by another program, or not a database; nothing "
                          "in it was changed")

    def status(self):
        """What the store holds, without changing it.

        Returns
        -------
        status : None or dict
            ``None`` when there is no run yet (no SQLite file, an empty
            database, or only other tables); otherwise ``{"config": dict,
            "schema": int}``.

        Raises
        ------
        StoreError
            For a file that is not an SQLite database, a database that
            cannot be read, one whose tables are not this package's, or a
            schema version from a newer release.
        """
        from sqlalchemy import inspect, select
        from sqlalchemy.exc import SQLAlchemyError
        if self.sqlite:
            path = Path(self.url.database)
            if not path.exists():
                return None
            if path.is_dir():
                raise StoreError(f"the store {path} is a directory, not an SQLite file")
            with open(path, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
            if head and head != _SQLITE_MAGIC:
                raise StoreError(f"the store {path} is not an SQLite database (its first "
                                 "bytes are not SQLite's): it is damaged or another file. "
                                 "Nothing was changed; move it away, or choose another "
                                 "output directory or --storage")
            if not head:
                return None  # an empty file: SQLite's empty database
        try:
            with self.engine.connect() as conn:
                names = set(inspect(conn).get_table_names())
                ours = {name for name in names if name.startswith(_PREFIX)}
                if not ours:
                    return None
                if self.meta.name not in ours:
                    raise StoreError(f"the store {self.describe()} has tables {sorted(ours)} "
                                     "but not a sklearn-crtcl run's: it is damaged or "
                                     "foreign; nothing was changed")
                meta = dict(conn.execute(select(self.meta.c.key, self.meta.c.value)).all())
        except SQLAlchemyError as exc:
            raise self._damaged(exc) from None
        try:
            schema = int(meta["schema"])
            config = json.loads(meta["config"])
        except (KeyError, ValueError, TypeError):
            raise StoreError(f"the store {self.describe()} has damaged run information "
                             "(schema or settings); nothing was changed") from None
        if schema > SCHEMA_VERSION:
            raise StoreError(f"the store {self.describe()} was written by a newer release "
                             f"of sklearn-crtcl (schema {schema}; this one reads "
                             f"{SCHEMA_VERSION}): upgrade sklearn-crtcl to continue it")
        if schema < SCHEMA_VERSION or not isinstance(config, dict):
            raise StoreError(f"the store {self.describe()} has an unknown schema {schema!r}")
        return {"config": config, "schema": schema}

    def _read(self, fn):
        from sqlalchemy.exc import SQLAlchemyError
        try:
            with self.engine.connect() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise self._damaged(exc) from None

    def units_list(self):
        """Every unit as a dict, in the order of the run.

        Returns
        -------
        list of dict
            Keys ``method, trial, position, cycle, done, labeled`` (a list of
            int), ``checkpoint, checkpoint_sha256, worker, heartbeat``.
        """
        from sqlalchemy import select

        def read(conn):
            rows = conn.execute(select(self.units).order_by(self.units.c.position)).mappings()
            return [dict(row) for row in rows]
        rows = self._read(read)
        for row in rows:
            try:
                row["labeled"] = json.loads(row["labeled"])
            except (TypeError, ValueError):
                row["labeled"] = None  # reported by the runner's consistency check
        return rows

    def records(self):
        """The committed records, one dict per (method, trial, cycle).

        Returns
        -------
        list of dict
        """
        from sqlalchemy import select
        t = self.records_table

        def read(conn):
            return conn.execute(select(t.c.method, t.c.trial, t.c.cycle, t.c.data)).all()
        out = []
        for method, trial, cycle, data in self._read(read):
            try:
                record = json.loads(data, parse_constant=_json_constant)
            except (TypeError, ValueError):
                record = None
            out.append({"method": method, "trial": trial, "cycle": cycle, "record": record})
        return out

    def live_workers(self, timeout, now=None):
        """The units held by workers whose heartbeat is younger than ``timeout``.

        Parameters
        ----------
        timeout : float
            Seconds.
        now : float, optional
            ``time.time()`` by default.

        Returns
        -------
        list of dict
            ``method, trial, worker, age`` (seconds since the last heartbeat).
        """
        now = time.time() if now is None else now
        return [{"method": u["method"], "trial": u["trial"], "worker": u["worker"],
                 "age": now - u["heartbeat"]}
                for u in self.units_list() if _held(u, timeout, now)]

    # ------------------------------------------------------------------ writing
    def _transaction(self, fn, what="written", lock=False):
        from sqlalchemy.exc import SQLAlchemyError
        try:
            with self.engine.begin() as conn:
                if lock and self.url.get_backend_name() == "postgresql":
                    # concurrent creators wait for each other (CREATE TABLE IF NOT
                    # EXISTS alone races on PostgreSQL's catalog)
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724031)")
                return fn(conn)
        except SQLAlchemyError as exc:
            raise self._damaged(exc, what) from None

    def create(self, config, units, replace=False):
        """Create the run, or find the one another worker has just created.

        Parameters
        ----------
        config : dict
            The run's settings (JSON-serialisable).
        units : list of (str, int)
            The (method, trial) units, in the order workers take them.
        replace : bool, default=False
            Remove any run already in the store first (``--overwrite``).

        Returns
        -------
        config : dict
            The settings of the store's run: ``config`` if this call created
            it, those of the run found otherwise.
        """
        from sqlalchemy import inspect, insert, select

        def create(conn):
            if replace:
                self.metadata.drop_all(conn, checkfirst=True)
            if self.meta.name in inspect(conn).get_table_names():
                found = dict(conn.execute(select(self.meta.c.key, self.meta.c.value)).all())
                if "config" in found:
                    return json.loads(found["config"])
            self.metadata.create_all(conn, checkfirst=True)
            conn.execute(insert(self.meta), [
                {"key": "schema", "value": str(SCHEMA_VERSION)},
                {"key": "config", "value": json.dumps(config, sort_keys=True)},
                {"key": "created", "value": repr(time.time())}])
            if units:
                conn.execute(insert(self.units), [
                    {"method": m, "trial": t, "position": i, "cycle": -1, "done": False,
                     "labeled": "[]", "checkpoint": None, "checkpoint_sha256": None,
                     "worker": None, "heartbeat": None}
                    for i, (m, t) in enumerate(units)])
            return config
        if self.sqlite:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        return self._transaction(create, lock=True)

    def claim(self, worker, timeout, skip=()):
        """Claim the first unfinished unit that no live worker holds.

        Parameters
        ----------
        worker : str
            This worker's identifier.
        timeout : float
            A claim whose heartbeat is older than this (seconds) is taken over.
        skip : collection of (str, int), default=()
            Units not to claim.

        Returns
        -------
        unit : dict or None
            The claimed unit (as :meth:`units_list` gives it); ``None`` when
            every unfinished unit is held by a live worker or all are done.
        """
        from sqlalchemy import and_, or_, update
        u = self.units
        for unit in self.units_list():
            key = (unit["method"], unit["trial"])
            if unit["done"] or key in skip:
                continue
            now = time.time()
            if _held(unit, timeout, now):
                continue
            free = [u.c.worker.is_(None), u.c.heartbeat.is_(None),
                    u.c.heartbeat < now - timeout]
            if unit["worker"] is not None:  # a dead worker of this host: its claim only
                free.append(u.c.worker == unit["worker"])

            def take(conn, unit=unit, now=now, free=free):
                return conn.execute(
                    update(u).where(and_(
                        u.c.method == unit["method"], u.c.trial == unit["trial"],
                        u.c.done.is_(False), or_(*free)))
                    .values(worker=worker, heartbeat=now)).rowcount
            if self._transaction(take) == 1:
                return next(x for x in self.units_list()
                            if (x["method"], x["trial"]) == key)
        return None

    def beat(self, worker, method, trial):
        """Renew this worker's claim on a unit.

        Parameters
        ----------
        worker : str
        method : str
        trial : int

        Returns
        -------
        bool
            Whether the worker still holds the unit.
        """
        return self._update_held(worker, method, trial, heartbeat=time.time()) == 1

    def _update_held(self, holder, method, trial, **values):
        """Set ``values`` (columns, ``worker`` among them) on a unit if ``holder``
        holds it; the number of rows changed."""
        from sqlalchemy import and_, update
        u = self.units
        return self._transaction(lambda conn: conn.execute(
            update(u).where(and_(u.c.method == method, u.c.trial == trial,
                                 u.c.worker == holder))
            .values(**values)).rowcount)

    def release(self, worker, method, trial):
        """Give a unit up (another worker may take it at once).

        Parameters
        ----------
        worker : str
        method : str
        trial : int
        """
        self._update_held(worker, method, trial, worker=None, heartbeat=None)

    def commit_cycle(self, worker, method, trial, cycle, labeled, checkpoint, sha256, done,
                     record):
        """Commit one cycle: its record, the labeled set and the checkpoint, at once.

        Parameters
        ----------
        worker : str
            Must still hold the unit.
        method : str
        trial : int
        cycle : int
            The cycle committed; the unit must be at ``cycle - 1``.
        labeled : sequence of int
        checkpoint, sha256 : str or None
            The checkpoint's file name and digest (``None`` once done).
        done : bool
            Whether this was the unit's last cycle (the claim is released).
        record : dict
            The cycle's record (JSON-serialisable).

        Raises
        ------
        LostClaimError
            If the worker no longer holds the unit or the unit is not at
            ``cycle - 1``; nothing is written then.
        """
        from sqlalchemy import insert

        def commit(conn):
            self._update_held_at(conn, worker, method, trial, cycle - 1,
                                 cycle=cycle, done=bool(done),
                                 labeled=_json_dumps(list(labeled)), checkpoint=checkpoint,
                                 checkpoint_sha256=sha256, worker=None if done else worker,
                                 heartbeat=None if done else time.time())
            conn.execute(insert(self.records_table).values(
                method=method, trial=trial, cycle=cycle, data=_json_dumps(record)))
        self._transaction(commit)

    def _update_held_at(self, conn, holder, method, trial, at_cycle, **values):
        """In ``conn``'s transaction, set ``values`` (columns: ``cycle`` and
        ``worker`` among them) on a unit that ``holder`` holds, unfinished, at
        ``at_cycle``; a :class:`LostClaimError` if it does not."""
        from sqlalchemy import and_, update
        u = self.units
        changed = conn.execute(
            update(u).where(and_(u.c.method == method, u.c.trial == trial,
                                 u.c.worker == holder, u.c.cycle == at_cycle,
                                 u.c.done.is_(False)))
            .values(**values)).rowcount
        if changed != 1:
            raise LostClaimError(f"{method}/{trial}: this worker no longer holds the "
                                 f"unit at cycle {at_cycle}")

    def update_record(self, worker, method, trial, cycle, record):
        """Replace the record of a unit's last committed cycle (the columns that
        come after the commit: the estimates from the next query's batch).

        Parameters
        ----------
        worker : str
            Must still hold the unit.
        method : str
        trial : int
        cycle : int
            The unit's last committed cycle.
        record : dict
            The cycle's complete record.

        Raises
        ------
        LostClaimError
            If the worker no longer holds the unit or the unit is not at
            ``cycle``; nothing is written then (the claim's heartbeat is
            renewed otherwise).
        """
        from sqlalchemy import and_, update
        r = self.records_table

        def write(conn):
            # the claim is checked (and renewed) by the same conditional update as a
            # commit's, which locks the unit's row until the record is written
            self._update_held_at(conn, worker, method, trial, cycle, heartbeat=time.time())
            conn.execute(update(r).where(and_(r.c.method == method, r.c.trial == trial,
                                              r.c.cycle == cycle))
                         .values(data=_json_dumps(record)))
        self._transaction(write)

    def reset_units(self, keys):
        """Forget the cycles and records of units (``--recover`` of contradicting units).

        Parameters
        ----------
        keys : collection of (str, int)
        """
        from sqlalchemy import and_, delete, update
        u, r = self.units, self.records_table

        def reset(conn):
            for method, trial in keys:
                conn.execute(update(u).where(and_(u.c.method == method, u.c.trial == trial))
                             .values(cycle=-1, done=False, labeled="[]", checkpoint=None,
                                     checkpoint_sha256=None, worker=None, heartbeat=None))
                conn.execute(delete(r).where(and_(r.c.method == method, r.c.trial == trial)))
        self._transaction(reset)

    def dispose(self):
        """Close the store's connections."""
        self.engine.dispose()

