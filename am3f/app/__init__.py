"""The front ends: the ``am3f`` command (``cli``, ``commands``), notebook helpers (``notebook``), the
explorer widget (``explorer``), papermill reproduction and notebook-output normalising (``reproduce``)."""
