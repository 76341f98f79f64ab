"""The verdict's rules, one small function each; :func:`collector.trends.verdict.verdict` applies them
in this order:

1. the status rules (:mod:`.status`), the first that applies decides: blank outputs, too little data
   (:mod:`.sufficiency`), one family declined alone, both families declined, watch (one family at
   the stricter p, a headline metric, trends in both families), ok;
2. the prompts only one side had (:mod:`.lines`);
3. the rules that only raise a status (:mod:`.raising`): pooled homogenisation with tail loss, then
   collapsed prompts;
4. the lines that never change it (:mod:`.lines`): per-prompt notes, pooled declines, each declined
   metric, worst first;
5. the details for machines (:mod:`.details`).

Every rule reads the same counts, made once (:mod:`.tally`).  Pure; no I/O.
"""
