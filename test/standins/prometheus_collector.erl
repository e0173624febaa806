%% @doc TEST-ONLY stand-in for prometheus.erl's `prometheus_collector' as the text format uses it:
%% `collect_mf(Registry, Collector, Callback)' calls `Collector:collect_mf(Registry, Callback)',
%% which must return `ok' (prometheus.erl matches `ok = ...': anything else crashes the scrape).
%% Global labels (the `prometheus' app's `global_labels') are not set in EMQX and not played.
-module(prometheus_collector).

-export([collect_mf/3]).

-spec collect_mf(atom(), module(), fun((term()) -> term())) -> ok.
collect_mf(Registry, Collector, Callback) ->
    ok = Collector:collect_mf(Registry, Callback).
