%% @doc Test helper: captures the log events of the node while a test runs, to check what was
%% logged (and that no secret was).
-module(emqx_guard_test_logs).

-export([start/0, stop/1, text/1, reports/1, log/2]).

%% @doc Adds a logger handler (level all) that sends every event to the calling process.
-spec start() -> {ok, logger:handler_id()}.
start() ->
    Id = list_to_atom("emqx_guard_test_logs_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = logger:add_handler(Id, ?MODULE, #{level => all, config => #{test => self()}}),
    {ok, Id}.

%% @doc Removes the handler; returns the events it caught, oldest first.
-spec stop(logger:handler_id()) -> [logger:log_event()].
stop(Id) ->
    ok = logger:remove_handler(Id),
    collect([]).

%% @doc The messages of Events as text, one a line.
-spec text([logger:log_event()]) -> binary().
text(Events) ->
    unicode:characters_to_binary([io_lib:format("~tp~n", [Msg]) || #{msg := Msg} <- Events]).

%% @doc The report maps among Events.
-spec reports([logger:log_event()]) -> [map()].
reports(Events) ->
    [R || #{msg := {report, R}} <- Events, is_map(R)].

%% @private logger handler callback: forwards every event to the test process.
-spec log(logger:log_event(), logger:handler_config()) -> term().
log(Event, #{config := #{test := Test}}) ->
    Test ! {emqx_guard_test_logs, Event}.

collect(Acc) ->
    receive
        {emqx_guard_test_logs, E} -> collect([E | Acc])
    after 0 -> lists:reverse(Acc)
    end.
