"""Reruns chapters the way a reader does, in a live tslab kernel (jupyter_client): every code cell in order, then
the configuration cell (tagged "configuration"; else the second code cell) and every cell after it again, then the
last code cell alone. Fails, naming the notebook, the pass and the cell, on any error or cell that does not compile.
    python3 scripts/rerun-notebooks.py notebooks/05-training.ipynb [...]
Run by scripts/run-notebooks.ts after each chapter's headless execution (JUPYTER_PATH names the tslab kernel)."""
import json
import os
import re
import sys

from jupyter_client.manager import start_new_kernel

ERROR = re.compile(r"^(\w*Error|Error): .*$|^\d+:\d+ - .*$", re.M)  # thrown after an await; a compile error
TIMEOUT = 1200


def run(kc, code):
    """Executes `code`; returns the first error it reported, or None."""
    msg_id = kc.execute(code)
    error = None
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error" and error is None:
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "stream" and content["name"] == "stderr" and error is None:
            m = ERROR.search(content["text"])
            if m:
                error = m.group(0)
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
    if reply["content"].get("status") == "error" and error is None:
        error = f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
    return error


def check(path):
    nb = json.load(open(path))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in cells]
    tagged = [i for i, c in enumerate(cells) if "configuration" in c.get("metadata", {}).get("tags", [])]
    config = tagged[0] if tagged else min(1, len(cells) - 1)
    passes = [
        ("in order", range(len(cells))),
        (f"again from the configuration cell ({config + 1})", range(config, len(cells))),
        ("the last cell alone", [len(cells) - 1]),
    ]
    km, kc = start_new_kernel(
        # tslab compiles TypeScript as it starts: on a loaded 2-core CI machine that once took over the default 60 s
        kernel_name="tslab", cwd=os.path.dirname(os.path.abspath(path)), startup_timeout=180
    )
    try:
        for name, indices in passes:
            for i in indices:
                error = run(kc, sources[i])
                if error:
                    first = sources[i].strip().splitlines()[0] if sources[i].strip() else ""
                    return f"{os.path.basename(path)}: {name}, code cell {i + 1} ({first[:80]}): {error}"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return None


def main():
    for path in sys.argv[1:]:
        failure = check(path)
        if failure:
            print(f"rerun: {failure}", file=sys.stderr)
            sys.exit(1)
        print(f"rerun: {os.path.basename(path)}: in order, from its configuration cell, and its last cell alone")


if __name__ == "__main__":
    main()
