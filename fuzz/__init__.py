"""The protocol fuzzer (``make fuzz``): random and adversarial frames through the real
handlers and workers on moto, and the counts that must stay 0.

:mod:`fuzz.world` builds the AWS side (moto, a faithful ``@connections``, SQS with
AWS's body rules and a virtual clock for delays), :mod:`fuzz.frames` makes the
frames, :mod:`fuzz.run` plays them and counts. Imports project code, never tests.
"""
