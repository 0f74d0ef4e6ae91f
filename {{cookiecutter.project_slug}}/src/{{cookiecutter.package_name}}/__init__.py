"""Data, model and prompts versioned together and reproduced by DVC.

Importing the package stays cheap: heavy libraries are imported inside the stage that uses them.
"""

__version__ = "0.1.0"
