"""`knet lab` start / answer / check / hint / reset / status, given a cluster (ClusterAccess), a
state file and the lab catalog. Each returns an Outcome: whether it passed and the lines to print."""

from __future__ import annotations

from dataclasses import dataclass, field

from knet.labs.access import ClusterAccess, LabClusterError, Setup, run_undo
from knet.labs.model import Lab, Question, Verdict, wrong
from knet.labs.state import LabState, StateFile


class LabError(Exception):
    """A request that cannot be done (no lab running, unknown lab, ...): the message says why."""


@dataclass
class Outcome:
    ok: bool
    lines: list[str] = field(default_factory=list)


def describe(lab: Lab, q: Question) -> list[str]:
    n = lab.questions.index(q) + 1
    how = ("answer with: knet lab answer VALUE" if q.typed
           else "fix it with kubectl, then run: knet lab check")
    return [f"Question {n}/{len(lab.questions)} [{q.id}]: {q.text}", f"  ({how}; knet lab hint for a hint)"]


def current_question(lab: Lab, state: LabState) -> Question | None:
    return next((q for q in lab.questions if q.id not in state.passed), None)


def evaluate(cluster: ClusterAccess, q: Question, answer: str | None) -> Verdict:
    """Observe the live cluster, then judge; a cluster that cannot be read is a failed check
    that says why."""
    if q.typed and answer is None:
        return wrong("not answered yet")
    try:
        facts = q.observe(cluster, answer)
    except LabClusterError as exc:
        return wrong(f"cannot check against the cluster: {exc}")
    return q.judge(facts, answer)


class Engine:
    def __init__(self, cluster: ClusterAccess, state_file: StateFile, labs: dict[str, Lab],
                 *, real_dataplane: bool = True) -> None:
        self.cluster = cluster
        self.state_file = state_file
        self.labs = labs
        self.real_dataplane = real_dataplane

    def _running(self) -> tuple[Lab, LabState]:
        state = self.state_file.load()
        if state is None:
            raise LabError("no lab is running: start one with knet lab start LAB (see knet lab list)")
        if state.lab not in self.labs:
            raise LabError(f'the running lab "{state.lab}" is not in this knet; undo it with knet lab reset')
        if not state.setup_done:
            raise LabError(f"setting up lab {state.lab} did not finish: knet lab reset, then start it again")
        return self.labs[state.lab], state

    def list(self) -> Outcome:
        state = self.state_file.load()
        width = max(len(n) for n in self.labs)
        lines = []
        for name in sorted(self.labs):
            lab = self.labs[name]
            mark = "*" if state and state.lab == name else " "
            count = len(lab.questions)
            lines.append(f"{mark} {name:<{width}}  {lab.title} ({count} question{'s' if count != 1 else ''})")
        return Outcome(True, lines)

    def start(self, name: str) -> Outcome:
        lab = self.labs.get(name)
        if lab is None:
            raise LabError(f'no lab "{name}" (labs: {", ".join(sorted(self.labs))})')
        if lab.needs_real_dataplane and not self.real_dataplane:
            raise LabError(f"lab {name} probes from pods and nodes: it needs a cluster with --dataplane real")
        state = self.state_file.load()
        if state is not None:
            if state.lab != name:
                raise LabError(f'lab "{state.lab}" is running: finish it or undo it first with knet lab reset')
            if not state.setup_done:  # its undo steps are in the state: keep them for reset
                raise LabError(f"setting up lab {name} did not finish: knet lab reset, then start it again")
            q = current_question(lab, state)
            return Outcome(True, [f"lab {name} is already running", *(describe(lab, q) if q else [])])
        state = LabState(lab=name)
        self.state_file.save(state)

        def record(step: dict) -> None:
            state.undo.append(step)
            self.state_file.save(state)

        if lab.setup is not None:
            try:
                lab.setup(Setup(self.cluster, record))
            except LabClusterError as exc:
                raise LabError(f"setting up lab {name} failed: {exc}; undo what was done with knet lab reset") from exc
        state.setup_done = True
        self.state_file.save(state)
        return Outcome(True, [f"Lab {name}: {lab.title}", *lab.summary.strip().splitlines(), "",
                              *describe(lab, lab.questions[0])])

    def answer(self, value: str, qid: str | None = None) -> Outcome:
        lab, state = self._running()
        q = lab.question(qid) if qid else current_question(lab, state)
        if q is None:
            return Outcome(True, [f"lab {lab.name} is complete: knet lab reset puts the cluster back"])
        if not q.typed:
            raise LabError(f"question {q.id} is checked on the cluster, not answered: "
                           "fix it with kubectl, then run knet lab check")
        state.answers[q.id] = value
        verdict = evaluate(self.cluster, q, value)
        return self._conclude(lab, state, q, verdict)

    def _conclude(self, lab: Lab, state: LabState, q: Question, verdict: Verdict) -> Outcome:
        if verdict.ok and q.id not in state.passed:
            state.passed.append(q.id)
        elif not verdict.ok and q.id in state.passed:
            state.passed.remove(q.id)
        self.state_file.save(state)
        lines = [f"{'✓' if verdict.ok else '✗'} [{q.id}] {verdict.message}"]
        if verdict.ok:
            nxt = current_question(lab, state)
            lines += describe(lab, nxt) if nxt else [f"Lab {lab.name} complete. knet lab reset puts the cluster back."]
        return Outcome(verdict.ok, lines)

    def check(self) -> Outcome:
        """Check every question against the live cluster now (answers given earlier included)."""
        lab, state = self._running()
        lines, all_ok = [], True
        for q in lab.questions:
            if q.typed and q.id in state.passed:
                # A typed answer was right about the cluster as it was then (a troubleshooting lab's
                # "how many endpoints?" is 0 before the fix): it stays right.
                lines.append(f"✓ [{q.id}] answered: {state.answers.get(q.id)}")
                continue
            verdict = evaluate(self.cluster, q, state.answers.get(q.id))
            if verdict.ok:
                if q.id not in state.passed:
                    state.passed.append(q.id)
            else:
                all_ok = False
                if q.id in state.passed:
                    state.passed.remove(q.id)
            lines.append(f"{'✓' if verdict.ok else '✗'} [{q.id}] {verdict.message}")
        self.state_file.save(state)
        nxt = current_question(lab, state)
        lines += [""] + (describe(lab, nxt) if nxt else
                         [f"Lab {lab.name} complete. knet lab reset puts the cluster back."])
        return Outcome(all_ok, lines)

    def hint(self) -> Outcome:
        lab, state = self._running()
        q = current_question(lab, state)
        if q is None:
            return Outcome(True, [f"lab {lab.name} is complete"])
        if not q.hints:
            return Outcome(True, [f"[{q.id}] no hints for this question"])
        shown = state.hints.get(q.id, 0)
        index = min(shown, len(q.hints) - 1)
        state.hints[q.id] = index + 1
        self.state_file.save(state)
        more = "" if index + 1 < len(q.hints) else " (last hint)"
        return Outcome(True, [f"Hint {index + 1}/{len(q.hints)} for [{q.id}]{more}: {q.hints[index]}"])

    def status(self) -> Outcome:
        lab, state = self._running()
        lines = [f"Lab {lab.name}: {lab.title}"]
        for q in lab.questions:
            mark = "✓" if q.id in state.passed else " "
            given = f" (answered: {state.answers[q.id]})" if q.id in state.answers else ""
            lines.append(f" {mark} [{q.id}] {q.text}{given}")
        nxt = current_question(lab, state)
        lines += [""] + (describe(lab, nxt) if nxt else [f"Lab {lab.name} complete."])
        return Outcome(True, lines)

    def reset(self) -> Outcome:
        state = self.state_file.load()
        if state is None:
            return Outcome(True, ["no lab is running"])
        failures = run_undo(self.cluster, state.undo)
        if failures:
            # Keep the state: what was undone is gone for good (deletes ignore what is absent), so
            # reset can run again for the rest.
            return Outcome(False, [f"could not undo everything of lab {state.lab}:", *(f"  {f}" for f in failures),
                                   "run knet lab reset again"])
        self.state_file.clear()
        return Outcome(True, [f"lab {state.lab} reset: {len(state.undo)} change(s) undone"])
