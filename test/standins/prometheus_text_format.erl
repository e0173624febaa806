%% @doc TEST-ONLY stand-in for prometheus.erl's `prometheus_text_format' (the Prometheus text
%% exposition format 0.0.4 that EMQX's `GET /api/v5/prometheus/stats' returns:
%% `prometheus_text_format:format(default)'), as its source renders it:
%% <ul>
%% <li>Each collector of the registry (`prometheus_registry:collect/2') is asked for its families
%%     (`prometheus_collector:collect_mf/3'); each family is written as `# TYPE <name> <type>',
%%     then `# HELP <name> <help>' (in the help, `\' as `\\' and a line break as `\n'), then one
%%     line per sample: `<name>' or `<name>{<label>="<value>",...}', a space and the value. A
%%     family without samples is its two comment lines only.</li>
%% <li>Label values escape `\' as `\\', a line break as `\n' and `"' as `\"'.</li>
%% <li>A value: an integer as it is, `undefined' as `NaN', anything else (a float) with `~p'.</li>
%% <li>The text ends with one more line break.</li>
%% </ul>
%% A collector that crashes crashes the whole format (as in prometheus.erl: the scrape fails).
-module(prometheus_text_format).

-include("prometheus_model.hrl").

-export([content_type/0, format/0, format/1, escape_label_value/1]).

-spec content_type() -> binary().
content_type() ->
    <<"text/plain; version=0.0.4">>.

-spec format() -> binary().
format() ->
    format(default).

-spec format(atom()) -> binary().
format(Registry) ->
    Acc = make_ref(),
    put(Acc, []),
    Callback = fun(_, Collector) ->
        prometheus_collector:collect_mf(Registry, Collector, fun(MF) -> put(Acc, [family(MF) | get(Acc)]) end)
    end,
    ok = prometheus_registry:collect(Registry, Callback),
    Text = iolist_to_binary([lists:reverse(erase(Acc)), "\n"]),
    Text.

-spec escape_label_value(binary() | iolist()) -> binary().
escape_label_value(Value) ->
    << <<(escape_label_char(C))/binary>> || <<C>> <= iolist_to_binary(Value) >>.

family(#'MetricFamily'{name = Name, help = Help, type = Type, metric = Metrics}) ->
    [
        "# TYPE ", Name, " ", type(Type), "\n",
        "# HELP ", Name, " ", << <<(escape_help_char(C))/binary>> || <<C>> <= iolist_to_binary(Help) >>, "\n",
        [series(Name, M) || M <- Metrics]
    ].

series(Name, #'Metric'{label = Labels} = M) ->
    Value =
        case M of
            #'Metric'{counter = #'Counter'{value = V}} -> V;
            #'Metric'{gauge = #'Gauge'{value = V}} -> V;
            #'Metric'{untyped = #'Untyped'{value = V}} -> V
        end,
    [Name, brackets(labels(Labels)), " ", value(Value), "\n"].

labels(B) when is_binary(B) -> B;
labels(Pairs) ->
    iolist_to_binary(lists:join(",", [[N, "=\"", escape_label_value(V), "\""] || #'LabelPair'{name = N, value = V} <- Pairs])).

brackets(<<>>) -> <<>>;
brackets(L) -> ["{", L, "}"].

value(undefined) -> <<"NaN">>;
value(V) when is_integer(V) -> integer_to_binary(V);
value(V) -> io_lib:format("~p", [V]).

type('COUNTER') -> "counter";
type('GAUGE') -> "gauge";
type('SUMMARY') -> "summary";
type('HISTOGRAM') -> "histogram";
type('UNTYPED') -> "untyped".

escape_help_char($\\) -> <<"\\\\">>;
escape_help_char($\n) -> <<"\\n">>;
escape_help_char(C) -> <<C>>.

escape_label_char($\\) -> <<"\\\\">>;
escape_label_char($\n) -> <<"\\n">>;
escape_label_char($") -> <<"\\\"">>;
escape_label_char(C) -> <<C>>.
