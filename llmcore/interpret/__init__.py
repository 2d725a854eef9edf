"""Interpretability: look inside a trained GPT, find its features, and steer it.

The modules follow the order a learner meets them in (notebook 06):

    activations   run text through the model and keep one hook's activations,
                  batched over a corpus with bounded memory
    lens          attention patterns per layer and head; the logit lens (what the
                  model would predict if it stopped after each layer)
    sae_model     a sparse autoencoder for one layer's residual stream: the model,
                  its training loop, SAELens's metrics (L0, variance explained,
                  dead features, loss recovered)
    sae           an SAE for a run: train it, save it as sae.safetensors in the
                  run directory, load it back (re-exports sae_model)
    features      what each SAE feature means: top contexts, histogram, the tokens
                  it pushes up, and which planted story-world concept it finds
    steer         raise, clamp or add a feature during generation (the Golden Gate Bridge); the
                  prompting baseline; measuring how often and how readably it steers

Figures for all of these live in `llmcore.viz.interpret`. Nothing heavy is imported
here: `import llmcore.interpret` stays cheap; import the submodule you need.
"""
