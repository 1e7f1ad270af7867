"""The second study: classification vs reconstruction in a shared latent (arXiv:2401.09237).

An encoder, a decoder and a classification head share one latent; the encoder is trained on
lambda * MSE + (1 - lambda) * CE while the decoder learns only from the MSE and the head only
from the CE. Sweeping lambda and the latent size shows how the two objectives compete.

    data.py     digits (offline default), MNIST / FashionMNIST / CIFAR-10 from a local copy
    models.py   the autoencoder family with its classification head (fc-s, fc-m, fc-l, cnn, vit)
    train.py    the routed loss and one training run
    sweep.py    sweeps, results JSON, plots
    live.py     what the app tab calls
    __main__.py python -m inversion.tradeoff sweep | plot | bench
"""
