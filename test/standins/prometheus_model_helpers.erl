%% @doc TEST-ONLY stand-in for prometheus.erl's `prometheus_model_helpers' (the functions a
%% collector uses to make its families), as its source has them:
%% <ul>
%% <li>`create_mf(Name, Help, Type, Metrics)': a `#'MetricFamily'{}' with Name and Help as given
%%     (atoms become binaries; lists are kept), Type `gauge' | `counter' | `untyped' | `boolean'
%%     (`boolean' is `UNTYPED') as the upper-case atom, anything else
%%     `error({invalid_metric_type, Type})'. Metrics: one or a list, each a `#'Metric'{}' or a
%%     tuple `{Labels, Value}' | `{Value}' | `Value' made into one of Type; `undefined' entries
%%     are dropped.</li>
%% <li>Labels: a list of `{Name, Value}', each made a `#'LabelPair'{}' (atoms become binaries,
%%     other non-text terms printed with `~p'), or a binary already rendered.</li>
%% </ul>
%% Summaries and histograms are not played (the plugin makes neither).
-module(prometheus_model_helpers).

-include("prometheus_model.hrl").

-export([create_mf/4, gauge_metric/1, gauge_metric/2, counter_metric/1, counter_metric/2, untyped_metric/2,
         boolean_metric/2, label_pairs/1, label_pair/1]).

-spec create_mf(term(), term(), atom(), term()) -> #'MetricFamily'{}.
create_mf(Name, Help, Type, Metrics0) ->
    Metrics = [metric(Type, M) || M <- lists:filter(fun(M) -> M =/= undefined end, listed(Metrics0))],
    #'MetricFamily'{name = text(Name), help = text(Help), type = mf_type(Type), metric = Metrics}.

gauge_metric({Labels, Value}) -> gauge_metric(Labels, Value);
gauge_metric({Value}) -> gauge_metric([], Value);
gauge_metric(Value) -> gauge_metric([], Value).

gauge_metric(Labels, Value) -> #'Metric'{label = label_pairs(Labels), gauge = #'Gauge'{value = Value}}.

counter_metric({Labels, Value}) -> counter_metric(Labels, Value);
counter_metric({Value}) -> counter_metric([], Value);
counter_metric(Value) -> counter_metric([], Value).

counter_metric(Labels, Value) -> #'Metric'{label = label_pairs(Labels), counter = #'Counter'{value = Value}}.

untyped_metric(Labels, Value) -> #'Metric'{label = label_pairs(Labels), untyped = #'Untyped'{value = Value}}.

boolean_metric(Labels, true) -> untyped_metric(Labels, 1);
boolean_metric(Labels, false) -> untyped_metric(Labels, 0);
boolean_metric(Labels, V) -> untyped_metric(Labels, V).

label_pairs(B) when is_binary(B) -> B;
label_pairs(Labels) -> [label_pair(L) || L <- Labels].

label_pair({Name, Value}) -> #'LabelPair'{name = text(Name), value = text(Value)}.

metric(_Type, M = #'Metric'{}) -> M;
metric(gauge, M) -> gauge_metric(M);
metric(counter, M) -> counter_metric(M);
metric(untyped, {Labels, V}) -> untyped_metric(Labels, V);
metric(untyped, V) -> untyped_metric([], V);
metric(boolean, {Labels, V}) -> boolean_metric(Labels, V);
metric(boolean, V) -> boolean_metric([], V).

listed(L) when is_list(L) -> L;
listed(One) -> [One].

mf_type(gauge) -> 'GAUGE';
mf_type(counter) -> 'COUNTER';
mf_type(summary) -> 'SUMMARY';
mf_type(histogram) -> 'HISTOGRAM';
mf_type(untyped) -> 'UNTYPED';
mf_type(boolean) -> 'UNTYPED';
mf_type(Type) -> erlang:error({invalid_metric_type, Type}).

text(A) when is_atom(A) -> atom_to_binary(A, utf8);
text(L) when is_list(L) -> L;
text(B) when is_binary(B) -> B;
text(V) -> io_lib:format("~p", [V]).
