"""The verification table printed by ``tpe verify`` and written into the demo's report."""

from __future__ import annotations

__all__ = ["format_report"]


def format_report(cases: list[dict]) -> str:
    head = (f"{'case':<42} {'M':>4} {'N':>4} {'K':>4} {'folds':>5} {'measured':>9} "
            f"{'model':>7}  result")
    lines = [head, "-" * len(head)]
    for c in cases:
        m, model = c["measured_cycles"], c["model_cycles"]
        if "cycle_bound" in c:  # a tile: the error against the model and the bound held to
            err = f"{c['cycle_error']:+.2%}"
            if c["cycle_bound"] is None:
                cyc = f"{err} vs model,"
            else:
                ok = abs(m - model) <= c["cycle_bound"] * model
                cyc = f"{err} {'within' if ok else 'BEYOND'} {c['cycle_bound']:.0%},"
            res = "exact" if c["results_ok"] else "WRONG"
            lines.append(f"{c['case']:<42} {c['M']:>4} {c['N']:>4} {c['K']:>4} "
                         f"{c['folds']:>5} {m:>9} {model:>7}  {cyc} {res} "
                         f"({c['cycle_bound_why']})")
            continue
        if c["cycles_checked"]:
            cyc = "=" if m == model else "!="
        else:  # stalls injected: at least the model's
            cyc = ">=" if m >= model else "<"
        res = "exact" if c["results_ok"] else "WRONG"
        lines.append(f"{c['case']:<42} {c['M']:>4} {c['N']:>4} {c['K']:>4} {c['folds']:>5} "
                     f"{c['measured_cycles']:>9} {c['model_cycles']:>7}  {cyc} {res}"
                     f"{'' if c['cycles_checked'] else ' (stalls injected)'}")
    return "\n".join(lines)
