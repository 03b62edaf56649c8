"""The surgeon console's web page: live endoscope video, the HUD, and the surgeon's input."""
