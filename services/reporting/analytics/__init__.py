"""Program analytics: events become facts (``facts``), facts become one summary per
application (``summaries``), summaries add up to the tables officers read and export
(``tables``). Pure: no I/O here; ``persistence`` stores facts and summaries.
"""
