#!/usr/bin/env python3
"""render_step.py - turn a CI template of configs/ci/ into the shell script its platform would
run, so test_notify.sh can run the templates themselves (not only the notify script).

  render_step.py github ACTION_YML INPUTS_JSON      composite action: env + run of each step,
                                                    ${{ inputs.X }} and ${{ github.action_path }}
  render_step.py azure TEMPLATE PARAMS_JSON         steps template: env + bash of each step,
                                                    ${{ parameters.X }}, then $(Var.Name) macros
                                                    from the environment (BUILD_SOURCESDIRECTORY…)
  render_step.py gitlab FILE JOB VARS_JSON          hidden job: variables (VARS_JSON overrides
                                                    them), before_script and script
  render_step.py gitlab-aud FILE JOB                the job's id_tokens, "VAR AUD" a line

It also refuses a template whose shell code contains a ${{ }} expression: inputs must reach the
shell through the environment, never pasted into the script (script injection).
"""
import json
import os
import re
import shlex
import sys

import yaml

EXPR = re.compile(r"\$\{\{\s*([A-Za-z_]+)\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


def die(msg):
    print("render_step.py: " + msg, file=sys.stderr)
    sys.exit(1)


def substitute(text, contexts):
    def repl(m):
        ctx, name = m.group(1), m.group(2)
        if ctx not in contexts or name not in contexts[ctx]:
            die("unknown expression " + m.group(0))
        v = contexts[ctx][name]
        if isinstance(v, bool):
            return "True" if v else "False"  # how Azure renders a boolean parameter
        return str(v)
    return EXPR.sub(repl, str(text))


def no_expressions(code, where):
    if "${{" in code:
        die(where + ": shell code contains a ${{ }} expression; pass it through env instead")


def exports(env):
    return "".join("export %s=%s\n" % (k, shlex.quote(v)) for k, v in env.items())


def github(path, inputs):
    doc = yaml.safe_load(open(path))
    if doc.get("runs", {}).get("using") != "composite":
        die("not a composite action")
    values = {k: str(v.get("default", "")) for k, v in doc.get("inputs", {}).items()}
    for k in inputs:
        if k not in values:
            die("no input " + k)
    values.update(inputs)
    for k, v in doc.get("inputs", {}).items():
        if v.get("required") and not values.get(k):
            die("required input missing: " + k)
    action_path = os.path.dirname(os.path.abspath(path))
    ctx = {"inputs": values, "github": {"action_path": action_path}}
    out = ["export GITHUB_ACTION_PATH=%s\n" % shlex.quote(action_path)]
    for i, step in enumerate(doc["runs"]["steps"]):
        if "run" not in step:
            die("step %d: only run steps are supported here" % i)
        if step.get("shell") not in ("sh", "bash"):
            die("step %d: shell must be sh or bash" % i)
        no_expressions(step["run"], "step %d" % i)
        env = {k: substitute(v, ctx) for k, v in (step.get("env") or {}).items()}
        out.append("(\n%s%s -c %s\n) || exit $?\n" % (exports(env), step["shell"],
                                                     shlex.quote(step["run"])))
    return "".join(out)


def azure(path, params):
    doc = yaml.safe_load(open(path))
    values = {}
    for p in doc.get("parameters", []):
        if p["name"] in params:
            values[p["name"]] = params[p["name"]]
        elif "default" in p:
            values[p["name"]] = p["default"]
        else:
            die("required parameter missing: " + p["name"])
    for k in params:
        if k not in values:
            die("no parameter " + k)

    def macros(text):
        def repl(m):
            var = m.group(1).upper().replace(".", "_")
            return os.environ.get(var, m.group(0))  # Azure leaves unknown macros as they are
        return MACRO.sub(repl, text)

    ctx = {"parameters": values}
    out = []
    for i, step in enumerate(doc["steps"]):
        if "bash" not in step:
            die("step %d: only bash steps are supported here" % i)
        no_expressions(step["bash"], "step %d" % i)
        env = {k: macros(substitute(v, ctx)) for k, v in (step.get("env") or {}).items()}
        out.append("(\n%sbash -c %s\n) || exit $?\n" % (exports(env),
                                                        shlex.quote(macros(step["bash"]))))
    return "".join(out)


def gitlab_job(path, job):
    doc = yaml.safe_load(open(path))
    if job not in doc:
        die("no job " + job)
    return doc[job]


def lines(v):
    return [v] if isinstance(v, str) else list(v or [])


def gitlab(path, job, variables):
    j = gitlab_job(path, job)
    env = {k: str(v) for k, v in (j.get("variables") or {}).items()}
    env.update(variables)
    code = lines(j.get("before_script")) + lines(j.get("script"))
    for c in code:
        no_expressions(c, job)
    # GitLab runs before_script and script in one shell, stopping at the first failing command
    return exports(env) + "set -e\n" + "\n".join(code) + "\n"


def gitlab_aud(path, job):
    j = gitlab_job(path, job)
    out = []
    for var, spec in (j.get("id_tokens") or {}).items():
        out.append("%s %s\n" % (var, spec["aud"]))
    return "".join(out)


def main(argv):
    if len(argv) < 3:
        die("usage: see the docstring")
    kind = argv[1]
    if kind == "github" and len(argv) == 4:
        sys.stdout.write(github(argv[2], json.loads(argv[3])))
    elif kind == "azure" and len(argv) == 4:
        sys.stdout.write(azure(argv[2], json.loads(argv[3])))
    elif kind == "gitlab" and len(argv) == 5:
        sys.stdout.write(gitlab(argv[2], argv[3], json.loads(argv[4])))
    elif kind == "gitlab-aud" and len(argv) == 4:
        sys.stdout.write(gitlab_aud(argv[2], argv[3]))
    else:
        die("usage: see the docstring")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
