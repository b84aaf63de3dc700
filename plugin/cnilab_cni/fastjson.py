"""JSON through the C accelerator ``_json`` only.

``import json`` costs ~10 ms (it imports ``re``), more than the rest of a plugin
call; the C scanner and encoder behind it need neither.
"""


try:
    import _json
except ImportError:  # an interpreter without the accelerator: take the slow path
    import json as _slow

    loads, dumps = _slow.loads, lambda obj: _slow.dumps(obj, separators=(",", ":"))
else:

    class _Ctx:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo: dict = {}

        @staticmethod
        def parse_constant(name: str) -> float:
            return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]

    _scan = _json.make_scanner(_Ctx())
    _encode = _json.make_encoder(None, lambda o: (_ for _ in ()).throw(TypeError(f"not JSON: {o!r}")),
                                 _json.encode_basestring_ascii, None, ":", ",", False, False, True)

    def loads(text: str | bytes):
        if isinstance(text, bytes):
            text = text.decode()
        text = text.strip()
        try:
            value, end = _scan(text, 0)
        except (StopIteration, SystemError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            # the C scanner reports errors through json.decoder, which -I -S start-up may lack
            raise ValueError(f"not a JSON document ({type(exc).__name__})") from None
        finally:
            _Ctx.memo.clear()
        if end != len(text):
            raise ValueError(f"extra data after the JSON document at character {end}")
        return value

    def dumps(obj) -> str:
        return "".join(_encode(obj, 0))
