"""The Space: the Gradio app of DETR Inversion Lab, one module per tab (`app.py` only wires it)."""
