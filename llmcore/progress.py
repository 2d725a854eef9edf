"""Training progress as a tqdm bar: the one callback `llmcore train` and the notebooks share.

    train(cfg, "runs/mine", callbacks=(ProgressBar(),))

The bar follows `TrainEvent`s. A run by steps counts steps; a run on a time budget
counts seconds of the budget used ("41.2/120.0 s"), because its step count is only a cap
the clock normally ends first, so a bar of steps would stop at 30% when time is up.
The postfix shows the step, the training loss, tokens per second and (when measured)
held-out bits per byte. With `samples=True` each timeline sample is written under the
bar ("step   500: 'Once upon a time' -> ' there was a girl'"), so noise turning into
sentences is seen live. tqdm.auto draws a widget in Jupyter and text in a terminal.
"""

from __future__ import annotations


class ProgressBar:
    """A callback for `llmcore.train.train` that draws a tqdm bar (steps, or seconds of a time budget)."""

    def __init__(self, *, samples: bool = True, prompt: str | None = None, disable: bool = False):
        self.samples, self.prompt, self.disable = samples, prompt, disable
        self.bar, self.by_time, self._shown = None, False, None

    def __call__(self, ev) -> None:
        from tqdm.auto import tqdm

        if ev.kind == "start":
            budget = ev.info.get("max_seconds")
            self.by_time = bool(budget)
            desc = f"training {ev.info.get('n_params', 0):,} parameters"
            if ev.info.get("device", "cpu") != "cpu":
                desc += f" on {ev.info['device']}"
            kw = dict(desc=desc, disable=self.disable)
            if self.by_time:  # seconds of the budget, shown as "41.2/120.0 s"
                kw |= dict(total=round(budget, 1), initial=min(round(budget, 1), round(ev.seconds or 0.0, 1)),
                           unit="s", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s{postfix}")
            else:
                kw |= dict(total=ev.steps, initial=ev.step, unit="step")
            if _is_notebook_bar(tqdm) and not self.disable:
                # Shown under a display id, so that "done" can replace the saved text ("0%|...")
                # with the finished bar: GitHub and nbconvert show that text, not the widget.
                from IPython.display import display

                self.bar = tqdm(**kw, display=False)
                self._shown = display(self.bar.container, display_id=True)
            else:
                self.bar = tqdm(**kw)
        elif self.bar is None:
            return  # events before "start" (a refusal, a first sample) have no bar to go to
        elif ev.kind == "step":
            post = {"loss": f"{ev.loss:.3f}", "tok/s": f"{ev.tokens_per_s or 0:,.0f}"}
            if self.by_time:
                post = {"step": f"{ev.step:,}"} | post
            if ev.val_bpb is not None:
                post["val bits/byte"] = f"{ev.val_bpb:.3f}"
            self.bar.set_postfix(post, refresh=False)
            to = min(self.bar.total, round(ev.seconds or 0.0, 1)) if self.by_time else ev.step
            self.bar.update(to - self.bar.n)  # redraws at most every tqdm.mininterval
        elif ev.kind == "sample" and self.samples and ev.samples:
            prompt = self.prompt if self.prompt in ev.samples else next(iter(ev.samples))
            self.bar.write(f"step {ev.step:>5}: {prompt!r} -> {ev.samples[prompt][:70]!r}")
        elif ev.kind == "done":
            self.close()

    def close(self) -> None:
        """End the bar (after "done", or when training stopped with an error)."""
        if self.bar is not None:
            self.bar.close()
            if self._shown is not None:
                self._shown.update(self.bar.container)
            self.bar, self._shown = None, None


def _is_notebook_bar(tqdm_class) -> bool:
    """True when tqdm.auto chose its Jupyter widget bar (it draws a plain text bar elsewhere)."""
    try:
        from tqdm.notebook import tqdm_notebook
    except ImportError:
        return False
    return issubclass(tqdm_class, tqdm_notebook)
