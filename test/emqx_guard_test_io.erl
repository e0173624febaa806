%% @doc Test helper: captures what a function prints.
%%
%% `capture(Fun) -> {Result, Output}' runs `Fun()' in the calling process with a temporary group
%% leader that implements the Erlang I/O protocol and collects every character written (also by
%% processes Fun spawns, which inherit the group leader). Output is a flat unicode string.
%% The original group leader is restored afterwards; an exception from Fun is re-raised after that.
%% Input requests answer `eof'.
%%
%% `capture_timed(Fun) -> {Result, [{AtMs, Line}]}' is the same, with each printed line and the
%% monotonic time (ms) at which it reached the group leader: what a command prints as it goes is
%% told apart from what it prints at its end.
-module(emqx_guard_test_io).

-export([capture/1, capture_timed/1]).

-spec capture(fun(() -> Result)) -> {Result, string()}.
capture(Fun) when is_function(Fun, 0) ->
    {Result, Stamped} = capture_stamped(Fun),
    {Result, lists:append([Text || {_, Text} <- Stamped])}.

-spec capture_timed(fun(() -> Result)) -> {Result, [{integer(), string()}]}.
capture_timed(Fun) when is_function(Fun, 0) ->
    {Result, Stamped} = capture_stamped(Fun),
    Lines = lists:append([[{At, L} || L <- string:split(Text, "\n", all), L =/= ""] || {At, Text} <- Stamped]),
    {Result, Lines}.

%% Every write with the time it arrived.
capture_stamped(Fun) ->
    Old = group_leader(),
    Collector = spawn(fun() -> collect([]) end),
    true = group_leader(Collector, self()),
    Outcome =
        try Fun() of
            Value -> {value, Value}
        catch
            Class:Reason:Stack -> {raised, Class, Reason, Stack}
        end,
    true = group_leader(Old, self()),
    Ref = monitor(process, Collector),
    Collector ! {get, self(), Ref},
    Output =
        receive
            {Ref, Text} ->
                demonitor(Ref, [flush]),
                Text;
            {'DOWN', Ref, process, _, Why} ->
                error({capture_collector_died, Why})
        end,
    case Outcome of
        {value, V} -> {V, Output};
        {raised, C, R, S} -> erlang:raise(C, R, S)
    end.

collect(Acc) ->
    receive
        {io_request, From, ReplyAs, Request} ->
            {Reply, Acc1} = request(Request, Acc),
            From ! {io_reply, ReplyAs, Reply},
            collect(Acc1);
        {get, From, Ref} ->
            From ! {Ref, lists:reverse(Acc)}
    end.

request({put_chars, Enc, Chars}, Acc) ->
    put_chars(fun() -> Chars end, Enc, Acc);
request({put_chars, Enc, M, F, A}, Acc) ->
    put_chars(fun() -> apply(M, F, A) end, Enc, Acc);
request({put_chars, Chars}, Acc) ->
    request({put_chars, latin1, Chars}, Acc);
request({put_chars, M, F, A}, Acc) ->
    request({put_chars, latin1, M, F, A}, Acc);
request({requests, Reqs}, Acc) ->
    lists:foldl(
        fun
            (Req, {ok, A}) -> request(Req, A);
            (_Req, Error) -> Error
        end,
        {ok, Acc},
        Reqs
    );
request(getopts, Acc) ->
    {[{binary, false}, {encoding, unicode}], Acc};
request({setopts, _}, Acc) ->
    {ok, Acc};
request({get_geometry, _}, Acc) ->
    {{error, enotsup}, Acc};
request(_Input, Acc) ->
    {eof, Acc}.

put_chars(Produce, Enc, Acc) ->
    try unicode:characters_to_list(Produce(), Enc) of
        Text when is_list(Text) -> {ok, [{erlang:monotonic_time(millisecond), Text} | Acc]};
        _ -> {{error, put_chars}, Acc}
    catch
        _:_ -> {{error, put_chars}, Acc}
    end.
