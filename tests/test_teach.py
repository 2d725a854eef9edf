"""llmcore.teach: the exercise checker, the smoke switch, and the notebook glue.

The checker is tested on the exercises whose answers need no shipped run (scale and
sampling arithmetic), and on every worked solution in notebooks/solutions/ when the
shipped run (and, for chapter 06, its SAE) is present.
"""

import importlib.util
import json
import re
import runpy
from pathlib import Path

import pytest

from llmcore import teach
from llmcore.errors import UserError

SOLUTIONS = Path(__file__).parent.parent / "notebooks" / "solutions"


def test_smoke_switch_reads_the_environment(monkeypatch):
    for value, on in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv("LLMCORE_SMOKE", value)
        assert teach.smoke() is on
    monkeypatch.delenv("LLMCORE_SMOKE")
    assert teach.smoke() is False


def test_none_gives_the_question_and_a_hint_without_failing():
    for ex_id in teach.EXERCISES:  # the code exercises need the shipped run: tests/test_code_exercises.py
        fb = teach.check(ex_id, None)
        assert fb.ok is None and not fb
        assert ex_id in repr(fb) and "Hint:" in repr(fb)
        assert fb._repr_markdown_().startswith("\u270f")


def test_right_answers_pass_with_a_tolerance():
    assert teach.check("07.3", 6).ok  # 5.97 days, within 2%
    assert teach.check("07.3", 1_720_320 / 12_000 / 24).ok
    assert teach.check("05.3", 2).ok
    assert teach.check("00.2", " Interpretability ").ok  # case, spaces and quotes do not count
    assert teach.check("00.2", "'interpretability'").ok
    fb = teach.check("07.4", 24.3)
    assert fb.ok and "24.3 is correct" in repr(fb) and fb._repr_markdown_().startswith("\u2705")


def test_numpy_and_torch_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert teach.check("05.3", np.int64(2)).ok
    assert teach.check("05.3", torch.tensor(2)).ok
    assert "2 is correct" in repr(teach.check("05.3", np.int64(2)))


def test_common_mistakes_get_a_specific_message():
    assert "A100" in repr(teach.check("07.4", 14.8))
    assert "6,000 GPUs" in repr(teach.check("07.3", 12))
    assert "next token is needed" in repr(teach.check("05.3", 1))
    assert "already reaches" in repr(teach.check("05.3", 3))


def test_a_function_answer_is_run_on_every_case():
    def gpu_hours(n_params, tokens):
        return 6 * n_params * tokens / (312e12 * 0.43 * 3600)

    fb = teach.check("07.5", gpu_hours)
    assert fb.ok and "all 3 inputs" in repr(fb) and "652,206" in repr(fb)
    assert "6 FLOPs" in repr(teach.check("07.5", lambda n, t: 2 * n * t / (312e12 * 0.43 * 3600)))
    assert teach.check("07.5", lambda n, t: None).ok is None  # the unchanged `return None  # your turn`
    fb = teach.check("07.5", lambda n, t: 1 / 0)
    assert fb.ok is False and "ZeroDivisionError" in repr(fb)
    fb = teach.check("07.5", lambda n, t: n)  # wrong, and no named mistake: the first input it fails on
    assert fb.ok is False and "should be 652,206" in repr(fb)
    assert "not a function" in repr(teach.check("07.5", 652_206))


def test_wrong_answers_say_which_way_and_never_raise():
    fb = teach.check("07.3", 60)
    assert fb.ok is False and "too big, by a factor of about 10" in repr(fb)
    assert fb._repr_markdown_().startswith("\u274c")
    assert "too small" in repr(teach.check("07.4", 20))
    for bad in ("ten", [1, 2], float("nan"), True, {"a": 1}):
        fb = teach.check("07.4", bad)
        assert fb.ok is False
    assert "not a number" in repr(teach.check("07.4", "ten"))
    assert teach.check("00.2", "parameters").ok is False


def test_unknown_exercise_is_a_user_error():
    with pytest.raises(UserError, match="no exercise '9.9'"):
        teach.check("9.9", 1)
    with pytest.raises(UserError):
        teach.expected("08.1")


def test_every_notebook_has_its_exercises():
    chapters = {ex_id.split(".")[0] for ex_id in teach.ALL_EXERCISES}
    assert chapters == {"00", "01", "02", "03", "04", "05", "06", "07"}
    for chapter in chapters:
        assert 3 <= sum(ex_id.startswith(chapter + ".") for ex_id in teach.ALL_EXERCISES) <= 5


def test_progress_bar_follows_the_training_events():
    from llmcore.train import TrainEvent

    bar = teach.ProgressBar()
    bar(TrainEvent("step", 1, 3, loss=5.0))  # before "start": ignored
    bar(TrainEvent("start", 0, 3, info={"n_params": 1234}))
    bar(TrainEvent("sample", 0, 3, samples={"Once upon a time": " and"}))
    for step in (1, 2, 3):
        bar(TrainEvent("step", step, 3, loss=5.0 / step, val_bpb=1.5 if step == 3 else None))
    assert bar.bar.n == 3 and "1,234" in bar.bar.desc
    bar(TrainEvent("done", 3, 3))


def test_sampling_explorer_redraws_a_figure(tiny_bpe_run):
    pytest.importorskip("ipywidgets")
    from llmcore.run import load_run

    run = load_run(tiny_bpe_run)
    w = teach.sampling_explorer(run.model, run.tokenizer, "Mia went to the", k=5)
    assert [c.description for c in w.children[:3]] == ["temperature", "top-k (0 = off)", "top-p"]
    fig = w.result
    assert len(fig.data) == 2 and len(fig.data[0].y) == 5
    w.children[1].value = 2  # top-k 2: only two tokens keep probability
    assert sum(p > 0 for p in w.result.data[1].y) == 2


def _shipped(sae: bool = False) -> bool:
    from llmcore.run import ASSETS, shipped_runs

    return "storyworld" in shipped_runs() and (not sae or (ASSETS / "storyworld" / "sae.safetensors").is_file())


@pytest.mark.skipif(not _shipped(sae=True), reason="the shipped storyworld run and its SAE are not built yet")
@pytest.mark.parametrize("ex_id", sorted(teach.EXERCISES))
def test_each_exercise_refuses_the_wrong_answers_it_names(ex_id):
    """Every named mistake, given as the answer, is refused with its own message; the right answer passes."""
    ex = teach.EXERCISES[ex_id]
    right = ex.expected()
    assert teach.check(ex_id, right).ok, ex_id
    named = [(wrong(right), why) for wrong, why in ex.mistakes]
    assert named or ex.kind == "prompt", f"{ex_id} names no typical wrong answer"
    for wrong, why in named:
        if wrong is None:  # 06.1: the right concept among the others
            continue
        fb = teach.check(ex_id, wrong)
        assert fb.ok is False and why in repr(fb), (ex_id, wrong, repr(fb))


@pytest.mark.skipif(not _shipped(), reason="the shipped storyworld run is not built yet")
def test_the_prompt_exercise_is_judged_by_what_the_model_writes():
    assert teach.check("00.3", teach.expected("00.3")).ok
    assert "already says 'bridge'" in repr(teach.check("00.3", "Mia walked over the bridge"))
    assert teach.check("00.3", "Once upon a time").ok is False
    assert teach.check("00.3", "").ok is False


def test_every_hint_runs_in_its_chapter():
    """Code in a hint's backticks names only what its chapter defines (or imports in the same hint),
    Python's builtins, llmcore's modules, and the parameters of the function the exercise asks for."""
    import ast
    import builtins

    for ex_id, ex in teach.EXERCISES.items():
        book = next(NOTEBOOKS.glob(ex_id[:2] + "_*.ipynb"))
        bound = set(dir(builtins))
        for cell in json.loads(book.read_text())["cells"]:
            if cell["cell_type"] == "code":
                for node in ast.walk(ast.parse("".join(cell["source"]))):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        bound.add(node.id)
                    elif isinstance(node, (ast.Import, ast.ImportFrom)):
                        bound.update((a.asname or a.name).split(".")[0] for a in node.names)
                    elif isinstance(node, ast.FunctionDef):  # the exercise cells' `def name(...)`
                        bound.add(node.name)
                        bound.update(a.arg for a in node.args.args)
        spans = re.findall(r"`([^`]+)`", ex.hint)
        for span in spans:
            try:
                tree = ast.parse(span)
            except SyntaxError:
                continue  # words in backticks, not code
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    bound.update((a.asname or a.name).split(".")[0] for a in node.names)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):  # `kth = ...`, `for t in`
                    bound.add(node.id)
        for span in spans:
            try:
                tree = ast.parse(span)
            except SyntaxError:
                continue
            loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            assert loaded <= bound, f"{ex_id}'s hint `{span}` names {sorted(loaded - bound)}, undefined in {book.name}"


@pytest.mark.parametrize("solution", sorted(p.name for p in SOLUTIONS.glob("*.py")))
def test_worked_solutions_are_right(solution, capsys):
    chapter = solution[:2]
    if not _shipped(sae=chapter in ("06",)):
        pytest.skip("the shipped storyworld run (and its SAE) is not built yet: scripts/build_assets.py")
    runpy.run_path(str(SOLUTIONS / solution), run_name="__main__")
    out = capsys.readouterr().out
    n = sum(ex_id.startswith(chapter + ".") for ex_id in teach.ALL_EXERCISES)
    assert out.count("Right!") == n, out
    assert "Not yet" not in out


NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def test_notebooks_import_only_and_check_every_exercise():
    """Each chapter: no def/class/lambda in its cells (STYLE 7), its stage chart first, every exercise of
    its chapter checked once, in order, with `answer = None` (or, for an exercise whose answer is a function,
    one whose body is `return None  # your turn`: the only `def` a notebook may hold), and a worked
    solution file beside it."""
    import ast

    books = sorted(NOTEBOOKS.glob("0*.ipynb"))
    assert [b.name[:2] for b in books] == ["00", "01", "02", "03", "04", "05", "06", "07"]
    exercise_cell = re.compile(r'def (\w+)\([\w, ]*\):\n    return None  # your turn\n\n\nteach\.check\("(\d\d\.\d)", \1\)')
    for book in books:
        cells = json.loads(book.read_text())["cells"]
        assert not [c["id"] for c in cells if "execution" in c["metadata"]], f"{book.name}: strip execution timings"
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        for src in code:
            if exercise_cell.fullmatch(src):
                continue
            defined = [type(n).__name__ for n in ast.walk(ast.parse(src))
                       if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
            assert not defined, f"{book.name} defines code: {defined}"
        assert "mermaid_bundle" in code[1], f"{book.name}: the stage chart should follow the setup cell"
        answer_cell = re.compile(r'answer = None  # your turn\nteach\.check\("(\d\d\.\d)", answer\)')
        checked = [m.group(1) if (m := answer_cell.fullmatch(src)) else f.group(2)
                   for src in code if answer_cell.fullmatch(src) or (f := exercise_cell.fullmatch(src))]
        kinds = {e: "function" if (f := exercise_cell.fullmatch(src)) else "answer"
                 for src in code for e in re.findall(r'teach\.check\("(\d\d\.\d)"', src)}
        for e in checked:  # a function exercise gets a `def`, an answer exercise an `answer = None`
            want = getattr(teach.ALL_EXERCISES[e], "kind", "function")
            assert (kinds[e] == "function") == (want == "function"), f"{book.name}: {e} asks for a {want}"
        chapter = book.name[:2]
        assert checked == sorted(e for e in teach.ALL_EXERCISES if e.startswith(chapter + ".")), book.name
        assert (SOLUTIONS / (book.stem + ".py")).is_file(), f"no solutions/{book.stem}.py"


# What a student must never read in a cell: nbval's comment markers and the smoke switch.
PLUMBING = re.compile(r"#\s*(NBVAL|PYTEST_VALIDATE)_\w+|\bteach\.(pick|smoke)\b|\bpick\(\s*full=|LLMCORE_SMOKE")


def test_no_test_plumbing_in_what_a_student_reads():
    """nbval's markers are cell tags, the smoke sizes cell metadata (notebooks/conftest.py); each
    smoke replacement matches its cell's source exactly once, and every cell nbval compares is tagged."""
    spec = importlib.util.spec_from_file_location("notebooks_conftest", NOTEBOOKS / "conftest.py")
    notebooks_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(notebooks_conftest)
    smaller = notebooks_conftest.smaller

    tagged = 0
    for book in sorted(NOTEBOOKS.glob("0*.ipynb")):
        for i, cell in enumerate(json.loads(book.read_text())["cells"]):
            src = "".join(cell["source"])
            found = PLUMBING.search(src)
            assert not found, f"{book.name} cell {i} shows test plumbing to the student: {found.group(0)!r}"
            meta = cell.get("metadata", {})
            tagged += "nbval-check-output" in meta.get("tags", [])
            smoke = meta.get("llmcore", {}).get("smoke")
            if smoke:
                assert smaller(src, smoke) != src  # raises when a replacement no longer matches once
                assert cell["cell_type"] == "code", f"{book.name} cell {i}"
    assert tagged >= 40, f"only {tagged} cells are compared by nbval"


def _chapter_statements(book: Path):
    """Every top-level statement of a chapter's code cells, in order, with the smoke sizes the tests use
    (notebooks/conftest.py): (source, names it stores, names it loads)."""
    import ast

    spec = importlib.util.spec_from_file_location("notebooks_conftest", NOTEBOOKS / "conftest.py")
    notebooks_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(notebooks_conftest)
    out = []
    for cell in json.loads(book.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        smoke = cell.get("metadata", {}).get("llmcore", {}).get("smoke")
        if smoke:
            src = notebooks_conftest.smaller(src, smoke)
        for stmt in ast.parse(src).body:
            if isinstance(stmt, (ast.FunctionDef, ast.Expr)):  # the learner's stub, displays: never needed
                continue
            stored, loaded = set(), set()
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name):
                    (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    stored.update((a.asname or a.name).split(".")[0] for a in node.names)
            out.append((ast.get_source_segment(src, stmt), stored, loaded))
    return out


def _namespace_for(statements, names: set[str]) -> dict:
    """Run only the statements a set of names needs (and what they need), in chapter order."""
    needed, keep = set(names), set()
    for i in range(len(statements) - 1, -1, -1):
        _, stored, loaded = statements[i]
        if stored & needed:
            keep.add(i)
            needed |= loaded
    ns: dict = {}
    for i in sorted(keep):
        exec(compile(statements[i][0], f"<chapter statement {i}>", "exec"), ns)
    return ns


@pytest.mark.skipif(not _shipped(sae=True), reason="the shipped storyworld run and its SAE are not built yet")
@pytest.mark.parametrize("chapter", ["00", "01", "02", "03", "05", "06", "07"])
def test_every_hint_runs_as_written_in_its_chapter(chapter):
    """Each hint's code (in backticks) runs, in order, in its chapter's namespace: the chapter's own statements
    that the hint needs run first (smoke sizes); the functions the chapter's exercises ask for, up to this one,
    are the learner's finished ones; the parameters of the one being written hold the first input tried."""
    import ast
    import builtins

    book = next(NOTEBOOKS.glob(chapter + "_*.ipynb"))
    statements = _chapter_statements(book)
    sources = "\n".join("".join(c["source"]) for c in json.loads(book.read_text())["cells"])
    functions = {m.group(3): (m.group(1), [p.strip() for p in m.group(2).split(",")]) for m in re.finditer(
        r'def (\w+)\(([\w, ]*)\):\n    return None  # your turn\n\n\nteach\.check\("(\d\d\.\d)"', sources)}
    for ex_id, ex in teach.EXERCISES.items():
        if not ex_id.startswith(chapter + "."):
            continue
        spans = []
        for span in re.findall(r"`([^`]+)`", ex.hint):
            try:
                spans.append((span, ast.parse(span)))
            except SyntaxError:
                continue  # words in backticks, not code
        loaded = {n.id for _, tree in spans for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(dir(builtins))
        ns = _namespace_for(statements, loaded)
        for fn_id, (name, _params) in functions.items():  # the functions the learner has written by now
            if fn_id <= ex_id:
                ns[name] = teach.EXERCISES[fn_id].expected()
        if ex_id in functions:  # the parameters of the function being written hold the first input tried
            ns.update(zip(functions[ex_id][1], ex.cases()[0]))
        for span, _ in spans:
            try:
                exec(compile(span, f"<hint of {ex_id}>", "exec"), ns)
            except Exception as e:  # noqa: BLE001 - the test reports any failure as the hint's
                raise AssertionError(f"{ex_id}'s hint `{span}` fails in {book.name}: {type(e).__name__}: {e}") from e


def _shown_before(book: Path, ex_id: str) -> str:
    """What a learner has read before exercise `ex_id` is asked: the chapter's Markdown and text outputs
    above the Markdown cell that asks it."""
    cells = json.loads(book.read_text())["cells"]
    asked = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and f"**{ex_id}**" in "".join(c["source"]))
    seen = []
    for c in cells[:asked]:
        seen.append("".join(c["source"]) if c["cell_type"] == "markdown" else "")
        for o in c.get("outputs", []):
            seen.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(seen)


@pytest.mark.skipif(not _shipped(sae=True), reason="the shipped storyworld run and its SAE are not built yet")
def test_at_most_one_answer_is_on_the_screen_before_its_question():
    """A number answer must not be printed (at the precision the checker accepts) above the exercise that asks
    for it; a word answer must not be printed as the answer. One exercise in the series may break this (00.2:
    the stage to visit is named on the map, on purpose: it is a question about the map)."""
    visible = []
    for ex_id, ex in teach.EXERCISES.items():
        book = next(NOTEBOOKS.glob(ex_id[:2] + "_*.ipynb"))
        seen = _shown_before(book, ex_id)
        if ex.kind == "number":
            v = float(ex.expected())
            if abs(v) < 10 and v == int(v):
                continue  # a small whole number (how many tokens stay, which block) is on every screen
            shapes = {f"{v:.2f}", f"{v:.3g}"} | ({f"{v:,.0f}"} if abs(v) >= 100 else set())
            if any(re.search(rf"(?<![\d.,]){re.escape(s)}(?![\d])", seen) for s in shapes):
                visible.append(ex_id)
        elif ex.kind == "text":
            answer = str(ex.expected()).strip()
            if re.search(rf"(answer|is|wins|lowest)[:\s]+['\"]?{re.escape(answer)}\b", seen, re.I):
                visible.append(ex_id)
            elif ex_id == "00.2" and answer in seen.lower():
                visible.append(ex_id)
    assert visible == ["00.2"], f"answers on the screen before their question: {visible}"


def test_every_chapter_has_an_exercise_where_the_learner_writes_code():
    """A function to write (01.2, 04.x, ...) or code to change and run (00.3's prompt), in every chapter."""
    writes = {e[:2] for e, ex in teach.ALL_EXERCISES.items() if getattr(ex, "kind", "function") in ("function", "prompt")}
    assert writes == {f"0{i}" for i in range(8)}, sorted(writes)
