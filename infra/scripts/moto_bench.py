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

If moto's internals are not what this expects, it says so on stderr and serves moto unchanged.
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
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main())
