%% The Erlang half of `make bench' (scripts/bench.sh compiles and runs it; it is not part of the
%% plugin). It times calls through emqx_guard_nif and prints `key=value' figures; it asserts
%% nothing about time.
-module(emqx_guard_bench).

-export([main/1]).

%% next_fires calls are split into this many rounds; the fastest round is reported.
-define(ROUNDS, 5).

%% @doc `main(["next_fires", Iters, Expr, Zone, After, N])' prints `ns_per_call=F result=R';
%% `main(["verify", Path])' prints `seconds=F result=...';
%% `main(["prune", Dir, Keep])' prints `seconds=F deleted=D failed=E'.
-spec main([string()]) -> no_return().
main(Args) ->
    try
        warm_up(),
        run(Args)
    of
        ok -> halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "bench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

run(["next_fires", ItersS, Expr, Zone, AfterS, NS]) ->
    Iters = list_to_integer(ItersS),
    After = list_to_integer(AfterS),
    N = list_to_integer(NS),
    E = unicode:characters_to_binary(Expr),
    Z = unicode:characters_to_binary(Zone),
    Outcome =
        case emqx_guard_nif:next_fires(E, Z, After, N) of
            {ok, _} -> "ok";
            {error, {Reason, _}} -> "error " ++ atom_to_list(Reason)
        end,
    %% In rounds, the fastest counts (as bench_next_fires.rs does).
    PerRound = max(1, Iters div ?ROUNDS),
    Micros = lists:min([
        element(1, timer:tc(fun() -> next_fires_loop(E, Z, After, N, 0, PerRound) end))
     || _ <- lists:seq(1, ?ROUNDS)
    ]),
    io:format("ns_per_call=~.1f result=~s~n", [Micros * 1000 / PerRound, Outcome]);
run(["verify", Path]) ->
    {Micros, Result} = timer:tc(emqx_guard_nif, verify, [unicode:characters_to_binary(Path)]),
    Shown =
        case Result of
            {ok, #{entries := E, bytes := B}} -> io_lib:format("ok entries=~b bytes=~b", [E, B]);
            {error, {Reason, Detail}} -> io_lib:format("error ~s: ~ts", [Reason, Detail])
        end,
    io:format("seconds=~.3f result=~ts~n", [Micros / 1.0e6, Shown]);
run(["prune", Dir, KeepS]) ->
    Keep = list_to_integer(KeepS),
    {Micros, Result} = timer:tc(emqx_guard_nif, prune, [
        unicode:characters_to_binary(Dir), Keep, undefined, false
    ]),
    {ok, #{deleted := Deleted, failed := Failed}} = Result,
    io:format("seconds=~.3f deleted=~b failed=~b~n", [Micros / 1.0e6, length(Deleted), length(Failed)]).

%% One untimed NIF call first, so that no timed figure includes loading the module and its
%% shared library (the first call of emqx_guard_nif triggers both).
warm_up() ->
    {ok, <<"@daily">>} = emqx_guard_nif:validate(<<"@daily">>),
    ok.

%% Call i asks for fire times after After + (i rem 1000) minutes, as bench_next_fires.rs does.
next_fires_loop(_E, _Z, _After, _N, I, I) ->
    ok;
next_fires_loop(E, Z, After, N, I, Iters) ->
    _ = emqx_guard_nif:next_fires(E, Z, After + (I rem 1000) * 60000, N),
    next_fires_loop(E, Z, After, N, I + 1, Iters).
