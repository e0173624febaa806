%% The Erlang half of `make bench' (scripts/bench.sh compiles and runs it; it is not part of the
%% plugin). It times calls through emqx_guard_nif and prints `key=value' figures; it asserts
%% nothing about time.
-module(emqx_guard_bench).

-export([main/1]).

%% next_fires calls are split into this many rounds; the fastest round is reported.
-define(ROUNDS, 5).

%% @doc `main(["next_fires", Iters, Expr, Zone, After, N])' prints `ns_per_call=F result=R';
%% `main(["verify", Path])' prints `seconds=F result=...' (verify_async/2, as the plugin verifies);
%% `main(["prune", Dir, Keep])' prints `seconds=F deleted=D failed=E' (prune_async/6);
%% `main(["impact", Path, Reps, IoLimit])' prints the 1 ms probe's lateness idle, during
%% verify_async/2 (low-priority thread) and during verify_async/2 reading at IoLimit bytes/s, one
%% `phase=...' line each per round, then the median p99s and their ratios;
%% `main(["retention", Dir, Keep])' prints the bytes prune_async/6 reads without and with records;
%% `main(["impact_upload", Endpoint, AccessKey, SecretKey, Path, Reps, IoLimit])' prints the 1 ms
%% probe's lateness idle, during offsite_upload_async/3 of Path (the NIF job the off-site queue
%% starts, default settings: 4 parts of 16 MiB in flight) and during the same at IoLimit bytes/s,
%% like `impact'.
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
    {Micros, Result} = timer:tc(fun() -> job(emqx_guard_nif:verify_async(unicode:characters_to_binary(Path), #{})) end),
    Shown =
        case Result of
            {ok, #{result := ok, entries := E, bytes := B}} -> io_lib:format("ok entries=~b bytes=~b", [E, B]);
            {ok, #{result := {error, {Reason, Detail}}}} -> io_lib:format("error ~s: ~ts", [Reason, Detail]);
            {error, {Reason, Detail}} -> io_lib:format("error ~s: ~ts", [Reason, Detail])
        end,
    io:format("seconds=~.3f result=~ts~n", [Micros / 1.0e6, Shown]);
run(["impact", Path0, RepsS, LimitS]) ->
    Path = unicode:characters_to_binary(Path0),
    Limit = list_to_integer(LimitS),
    New = fun() -> verify_async(Path, #{}) end,
    Limited = fun() -> verify_async(Path, #{io_limit => Limit}) end,
    %% Phases interleaved, Reps times over, so that a burst of load from elsewhere on the machine
    %% hits every phase alike; each idle phase lasts as long as the new-way phase before it (at
    %% least 5 s), so idle and new get as many samples.
    Rounds = [
        begin
            N = probe_while(New),
            I = probe_while(fun() -> timer:sleep(max(5000, round(maps:get(seconds, N) * 1000))) end),
            L = probe_while(Limited),
            #{idle => I, async_idle_prio => N, async_io_limit => L}
        end
     || _ <- lists:seq(1, list_to_integer(RepsS))
    ],
    Phases = [idle, async_idle_prio, async_io_limit],
    [[print_phase(Name, maps:get(Name, Round)) || Name <- Phases] || Round <- Rounds],
    Median = maps:from_list([{Name, median([maps:get(p99, maps:get(Name, R)) || R <- Rounds])} || Name <- Phases]),
    io:format("p99_median_us idle=~b async_idle_prio=~b async_io_limit=~b (of ~b rounds)~n", [
        maps:get(idle, Median), maps:get(async_idle_prio, Median), maps:get(async_io_limit, Median), length(Rounds)
    ]),
    R = fun(A, B) -> maps:get(A, Median) / max(1, maps:get(B, Median)) end,
    io:format("p99_async_over_idle=~.2f p99_limited_over_idle=~.2f~n", [
        R(async_idle_prio, idle), R(async_io_limit, idle)
    ]);
run(["impact_upload", Endpoint, AccessKey, SecretKey, Path0, RepsS, LimitS]) ->
    Path = unicode:characters_to_binary(Path0),
    Config = fun(Round) ->
        #{bucket => <<"bench">>, prefix => iolist_to_binary(["impact/", integer_to_list(Round)]),
          endpoint => unicode:characters_to_binary(Endpoint), path_style => true,
          access_key => unicode:characters_to_binary(AccessKey),
          secret_key => unicode:characters_to_binary(SecretKey)}
    end,
    Upload = fun(Round, Opts) ->
        fun() ->
            case job(emqx_guard_nif:offsite_upload_async(Config(Round), Path, Opts)) of
                {ok, #{reused := false}} -> ok;
                Other -> error({offsite_upload_async, Other})
            end
        end
    end,
    Rounds = [
        begin
            U = probe_while(Upload(2 * Round, #{})),
            I = probe_while(fun() -> timer:sleep(max(5000, round(maps:get(seconds, U) * 1000))) end),
            L = probe_while(Upload(2 * Round + 1, #{io_limit => list_to_integer(LimitS)})),
            #{idle => I, upload => U, upload_io_limit => L}
        end
     || Round <- lists:seq(1, list_to_integer(RepsS))
    ],
    Phases = [idle, upload, upload_io_limit],
    [[print_phase(Name, maps:get(Name, Round)) || Name <- Phases] || Round <- Rounds],
    P99 = fun(Name) -> median([maps:get(p99, maps:get(Name, R)) || R <- Rounds]) end,
    io:format("p99_median_us idle=~b upload=~b upload_io_limit=~b (of ~b rounds)~n"
              "p99_upload_over_idle=~.2f p99_limited_over_idle=~.2f~n",
              [P99(idle), P99(upload), P99(upload_io_limit), length(Rounds),
               P99(upload) / max(1, P99(idle)), P99(upload_io_limit) / max(1, P99(idle))]);
run(["retention", Dir0, KeepS]) ->
    Dir = unicode:characters_to_binary(Dir0),
    Keep = list_to_integer(KeepS),
    {ok, #{bytes_read := Before, verified := Records}} = prune(Dir, Keep, true, []),
    {ok, #{bytes_read := After}} = prune(Dir, Keep, true, Records),
    io:format("bytes_read_without_records=~b bytes_read_with_records=~b records=~b~n", [
        Before, After, length(Records)
    ]);
run(["prune", Dir, KeepS]) ->
    Keep = list_to_integer(KeepS),
    {Micros, Result} = timer:tc(fun() -> prune(unicode:characters_to_binary(Dir), Keep, false, []) end),
    {ok, #{deleted := Deleted, failed := Failed}} = Result,
    io:format("seconds=~.3f deleted=~b failed=~b~n", [Micros / 1.0e6, length(Deleted), length(Failed)]).

%% One untimed NIF call first, so that no timed figure includes loading the module and its
%% shared library (the first call of emqx_guard_nif triggers both).
warm_up() ->
    {ok, <<"@daily">>} = emqx_guard_nif:validate(<<"@daily">>),
    ok.

verify_async(Path, Opts) ->
    case job(emqx_guard_nif:verify_async(Path, Opts)) of
        {ok, #{result := ok}} -> ok;
        Other -> error({verify_async, Other})
    end.

%% Retention as the plugin runs it, a prune_async/6 job; its result.
prune(Dir, Keep, DryRun, Records) ->
    job(emqx_guard_nif:prune_async(Dir, Keep, undefined, DryRun, Records, #{})).

%% The result of the job a NIF started (its progress reports dropped).
job({ok, Job}) ->
    receive
        {emqx_guard_job_progress, Job, _} -> job({ok, Job});
        {emqx_guard_job, Job, Result} -> Result
    end;
job({error, _} = Error) ->
    Error.

median(Xs) ->
    lists:nth((length(Xs) + 1) div 2, lists:sort(Xs)).

%% Call i asks for fire times after After + (i rem 1000) minutes, as bench_next_fires.rs does.
next_fires_loop(_E, _Z, _After, _N, I, I) ->
    ok;
next_fires_loop(E, Z, After, N, I, Iters) ->
    _ = emqx_guard_nif:next_fires(E, Z, After + (I rem 1000) * 60000, N),
    next_fires_loop(E, Z, After, N, I + 1, Iters).

%% Runs Work while a probe process on a normal scheduler sleeps 1 ms at a time and records how
%% late it wakes (microseconds); returns the lateness percentiles and Work's duration.
probe_while(Work) ->
    Self = self(),
    Probe = spawn_link(fun() -> probe_loop(Self, []) end),
    T0 = erlang:monotonic_time(microsecond),
    Work(),
    Secs = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    Probe ! {stop, Self},
    Samples = receive {samples, S} -> lists:sort(S) end,
    N = length(Samples),
    At = fun(Q) -> lists:nth(max(1, min(N, round(Q * N))), Samples) end,
    #{n => N, p50 => At(0.50), p99 => At(0.99), max => lists:last(Samples), seconds => Secs}.

probe_loop(Parent, Acc) ->
    T0 = erlang:monotonic_time(microsecond),
    receive
        {stop, Parent} -> Parent ! {samples, Acc}
    after 1 ->
        Late = erlang:monotonic_time(microsecond) - T0 - 1000,
        probe_loop(Parent, [Late | Acc])
    end.

print_phase(Name, #{n := N, p50 := P50, p99 := P99, max := Max, seconds := Secs}) ->
    io:format("phase=~s samples=~b p50_us=~b p99_us=~b max_us=~b seconds=~.2f~n", [
        Name, N, P50, P99, Max, Secs
    ]).
