"""moto's server with one change, for bench-dynamodb: transactions back up only their items.

Run by moto's own interpreter instead of its `moto_server` script, with the same arguments
(`portal_testkit::moto::MotoBuilder::python_script` does this: `python moto_bench.py -H
127.0.0.1 -p PORT`).

moto's `TransactWriteItems` takes a rollback copy of the whole table once per *item* of the
transaction, so a 99-item claim or outcome write on a table of a few thousand items takes
tens of seconds, and an event stream over 20,000 invitations would take days. This backs up
only the items the transaction names (their state before it, or their absence) and, if moto
cancels or rejects the transaction, puts exactly those back: the same all-or-nothing answer,
at a cost of the transaction's size instead of the table's. Nothing that is counted changes.

Second change: moto keeps every model object it ever creates, for its `/moto-api/data.json`
dump (`BaseModel.__new__` appends each instance to its class's `instances_tracked`, and only
`POST /moto-api/reset` lets go). That includes every DynamoDB `Item`: each write, each copy a
Query or a conditional write takes, each item of a deleted table; and every SQS message,
deleted or not, with its body. A campaign over 10,000 contacts leaves ~77,000 items behind
(~3 KB each) and 20,000 contacts over 150,000, so moto's memory grows with every request
and never shrinks, and a bench run that also syncs 100,000 contacts holds millions. Here
DynamoDB items and SQS messages are not tracked: they still live as long as moto's tables and
queues hold them, but the dump no longer lists them (for items it listed only empty objects:
none of their attributes is JSON). SES messages stay tracked (bench-dynamodb reads them from
the dump). No request or answer changes.

Third change: moto's `Table.all_items` sorts the whole table, and every Query page calls it
(a table Query then keeps the items of its partition, an index Query those matching its
key and sorts them again), so each page costs a sort of the table: a 20,000-contact send
spends most of its time there. During a Query, a table Query gets only its partition's
items (in the same order) and an index Query gets the items unsorted: moto sorts those by
the index keys and then the table keys, a key unique per item, so the order, the pages and
the answers are the same.

If moto's internals are not what this expects, it says so on stderr and serves that part of
moto unchanged.
"""
import copy, sys, threading
try:
    import moto.dynamodb.models as m
    _local = threading.local()
    _deepcopy_orig = copy.deepcopy
    def _deepcopy(x, memo=None):
        # Inside a patched transaction the whole-table backup is skipped (see below).
        if getattr(_local, "active", False) and isinstance(x, m.Table):
            return x
        return _deepcopy_orig(x, memo)
    class _Copy:
        deepcopy = staticmethod(_deepcopy)
        def __getattr__(self, name):
            return getattr(copy, name)
    _transact = m.DynamoDBBackend.transact_write_items
    def _key(self, op):
        table = self.get_table(op["TableName"])
        if "Key" in op:
            return op["Key"]
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    def transact_write_items(self, transact_items, *args, **kwargs):
        saved = []
        try:
            for item in transact_items:
                _, op = next(iter(item.items()))
                key = _key(self, op)
                current = self.get_item(op["TableName"], key)
                before = _deepcopy_orig(current.to_json()["Attributes"]) if current else None
                saved.append((op["TableName"], key, before))
        except Exception:
            saved = None  # let moto answer the malformed request as it does
        _local.active = saved is not None
        try:
            return _transact(self, transact_items, *args, **kwargs)
        except Exception:
            for table_name, key, before in reversed(saved or []):
                if before is None:
                    try:
                        self.delete_item(table_name, key)
                    except Exception:
                        pass
                else:
                    self.put_item(table_name, before)
            raise
        finally:
            _local.active = False
    m.copy = _Copy()
    m.DynamoDBBackend.transact_write_items = transact_write_items
except (ImportError, AttributeError) as e:
    print("bench-dynamodb: moto left as it is:", e, file=sys.stderr)
try:
    import moto.dynamodb.models as _dynamodb
    import moto.sqs.models as _sqs
    def _untracked(cls, *args, **kwargs):
        return object.__new__(cls)
    for _cls in (_dynamodb.Item, _sqs.Message):
        if not isinstance(getattr(_cls, "instances_tracked", None), list):
            raise AttributeError(f"{_cls.__name__}.instances_tracked")
        _cls.__new__ = staticmethod(_untracked)
        _cls.instances_tracked.clear()
except (ImportError, AttributeError) as e:
    print("bench-dynamodb: moto keeps tracking its items:", e, file=sys.stderr)
try:
    from moto.dynamodb.models.table import Table as _Table
    _all_items = _Table.all_items
    _query = _Table.query
    _in_query = threading.local()
    def _items_for_query(self):
        mode = getattr(_in_query, "mode", None)
        if mode is None:
            return _all_items(self)
        if mode == "index":
            if not self.range_key_attr:
                return list(self.items.values())
            return [item for part in self.items.values() for item in part.values()]
        part = self.items.get(mode[1])  # `get`: the defaultdict must not grow
        if part is None:
            return []
        if not self.range_key_attr:
            return [part]
        return sorted(part.values(), key=lambda x: x.range_key)
    def _query_one_sort(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name:
            _in_query.mode = "index"
        elif hash_key is not None:
            _in_query.mode = ("table", hash_key)
        try:
            return _query(self, hash_key, *args, **kwargs)
        finally:
            _in_query.mode = None
    _Table.all_items = _items_for_query
    _Table.query = _query_one_sort
except (ImportError, AttributeError) as e:
    print("bench-dynamodb: moto's Query left as it is:", e, file=sys.stderr)
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main())
