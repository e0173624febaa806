%% @doc Test helper for the scheduler and CLI suites: a fresh data dir, the app
%% started against the stand-ins, an injected clock and timer, and the `guard'
%% command run through the emqx_ctl stand-in with its output captured.
%%
%% Fake clock: `set_now(Ms)' sets what the scheduler reads as "now".
%% Fake timer: every `send_after' of the scheduler becomes a message
%% `{fake_timer, Ref, Delay, Pid, Msg}' to the process that built the options
%% (the test case); `next_timer(Kind)' takes the next one of that kind
%% (`wake' or `catchup') and `deliver/1' hands it to the scheduler, as the real
%% timer would when it expires.
-module(emqx_guard_ct_helper).

-include_lib("stdlib/include/assert.hrl").

-export([
    init_suite/1,
    init_case/2,
    end_case/0,
    fake_opts/1,
    start_app/1,
    stop_app/0,
    set_now/1,
    utc/1,
    next_timer/1,
    no_timer/1,
    deliver/1,
    ctl/1,
    result/1,
    steps/1,
    wait_until/1,
    wait_idle/0,
    job_threads/0,
    backups/0,
    settings_file_content/0
]).

-define(NOW_KEY, {?MODULE, now}).

%% @doc For init_per_suite: the NIF must answer (or every case is meaningless, so the suite
%% fails) and the app is loaded, so its environment can be set per case.
-spec init_suite(list()) -> list().
init_suite(Config) ->
    case try emqx_guard_nif:validate(<<"* * * * *">>) catch C:R -> {C, R} end of
        {ok, _} ->
            case application:load(emqx_guard) of
                ok -> ok;
                {error, {already_loaded, emqx_guard}} -> ok
            end,
            Config;
        Other ->
            ct:fail({nif_not_usable, Other})
    end.

%% @doc A fresh data dir for the test case, stand-ins reset, nothing running.
-spec init_case(atom(), list()) -> list().
init_case(TC, Config) ->
    Base = proplists:get_value(priv_dir, Config),
    Dir = filename:join(Base, atom_to_list(TC) ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = emqx:set_data_dir(Dir),
    ok = emqx_mgmt_data_backup:reset(),
    {ok, _} = emqx_ctl:start(),
    ok = emqx_alarm:reset(),
    flush(),
    [{data_dir, Dir} | Config].

%% @doc Stops the app and forgets the injected options.
-spec end_case() -> ok.
end_case() ->
    stop_app(),
    application:unset_env(emqx_guard, scheduler),
    _ = persistent_term:erase(?NOW_KEY),
    _ = code:ensure_loaded(emqx_mgmt_data_backup),
    ok = emqx_mgmt_data_backup:reset(),
    flush(),
    ok.

%% @doc Scheduler options with the fake clock and timer, plus Extra.
-spec fake_opts(map()) -> map().
fake_opts(Extra) ->
    Test = self(),
    maps:merge(
        #{
            now => fun() -> persistent_term:get(?NOW_KEY) end,
            send_after => fun(Delay, Pid, Msg) ->
                Ref = make_ref(),
                Test ! {fake_timer, Ref, Delay, Pid, Msg},
                Ref
            end,
            cancel_timer => fun(_Ref) -> false end,
            catchup_delay_ms => 60000
        },
        Extra
    ).

%% @doc Starts emqx_guard with the given scheduler options (`real' for none)
%% and waits until the scheduler has finished its start-up work.
-spec start_app(map() | real) -> ok.
start_app(real) ->
    application:unset_env(emqx_guard, scheduler),
    start();
start_app(Opts) ->
    ok = application:set_env(emqx_guard, scheduler, Opts),
    start().

start() ->
    {ok, _} = application:ensure_all_started(emqx_guard),
    _ = emqx_guard_scheduler:status(),
    ok.

-spec stop_app() -> ok.
stop_app() ->
    _ = application:stop(emqx_guard),
    %% unregister_command is a cast: let emqx_ctl handle it before anyone looks
    _ = try sys:get_state(emqx_ctl) catch _:_ -> ok end,
    %% timers armed by the stopped scheduler are gone with it
    flush().

-spec set_now(integer() | calendar:datetime()) -> ok.
set_now({{_, _, _}, {_, _, _}} = DateTime) ->
    set_now(utc(DateTime));
set_now(Ms) when is_integer(Ms) ->
    persistent_term:put(?NOW_KEY, Ms).

%% @doc A UTC date and time as Unix milliseconds.
-spec utc(calendar:datetime()) -> integer().
utc(DateTime) ->
    (calendar:datetime_to_gregorian_seconds(DateTime) - 62167219200) * 1000.

%% @doc The next timer of Kind the scheduler armed: `{Delay, Pid, Msg}'.
-spec next_timer(wake | catchup) -> {non_neg_integer(), pid(), term()}.
next_timer(Kind) ->
    receive
        {fake_timer, _Ref, Delay, Pid, {emqx_guard_scheduler, Kind, _} = Msg} -> {Delay, Pid, Msg}
    after 5000 ->
        error({no_timer_armed, Kind})
    end.

%% @doc Asserts that no timer of Kind was armed (call after a synchronous call
%% to the scheduler, so every message it sent before is already here).
-spec no_timer(wake | catchup) -> ok.
no_timer(Kind) ->
    _ = emqx_guard_scheduler:status(),
    receive
        {fake_timer, _Ref, Delay, _Pid, {emqx_guard_scheduler, Kind, _}} -> error({unexpected_timer, Kind, Delay})
    after 0 ->
        ok
    end.

%% @doc Hands an armed timer's message to the (running) scheduler, as the timer would,
%% and waits until it was handled.
-spec deliver({non_neg_integer(), pid(), term()}) -> ok.
deliver({_Delay, _ArmedBy, Msg}) ->
    emqx_guard_scheduler ! Msg,
    _ = emqx_guard_scheduler:status(),
    ok.

%% @doc Runs `emqx ctl guard Args...' through the emqx_ctl stand-in; returns
%% the printed lines. The callback must have returned exactly `ok'.
-spec ctl([string()]) -> [string()].
ctl(Args) ->
    {Result, Out} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command(["guard" | Args]) end),
    ?assertEqual(ok, Result, Out),
    [L || L <- string:split(Out, "\n", all), L =/= ""].

%% @doc The lines a long command printed after its steps (`emqx_guard_steps_cli': each step line
%% is `<step>: ...' and starts the output), i.e. its result: `Backup done in ...' and its details,
%% or the `Error:' line.
-spec result([string()]) -> [string()].
result(Lines) ->
    lists:dropwhile(fun is_step_line/1, Lines).

%% @doc The step lines a long command printed before its result.
-spec steps([string()]) -> [string()].
steps(Lines) ->
    lists:takewhile(fun is_step_line/1, Lines).

is_step_line(Line) ->
    lists:any(fun(Step) -> lists:prefix(Step ++ ": ", Line) end,
              ["export", "protect", "verify", "plugins", "prune", "copy", "off-site", "download"]).

%% @doc Polls Fun until it returns true (bounded; not a timing assertion).
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(Fun) ->
    wait_until(Fun, 1500).

wait_until(Fun, 0) ->
    error({condition_never_true, erlang:fun_info(Fun, name)});
wait_until(Fun, N) ->
    case Fun() of
        true ->
            ok;
        false ->
            timer:sleep(20),
            wait_until(Fun, N - 1)
    end.

%% @doc How many background jobs of the NIF run in this node: its OS threads named
%% `emqx_guard_job' (each job has a thread of its own, from its start to its end).
-spec job_threads() -> non_neg_integer().
job_threads() ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    Named = fun(Task) -> file:read_file(filename:join(["/proc/self/task", Task, "comm"])) end,
    length([T || T <- Tasks, Named(T) =:= {ok, <<"emqx_guard_job\n">>}]).

%% @doc Waits until no backup is running.
-spec wait_idle() -> ok.
wait_idle() ->
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =:= undefined end).

%% @doc The export files in the backup dir, sorted by name (their plugins companions,
%% `….plugins.tgz', are no exports).
-spec backups() -> [string()].
backups() ->
    case file:list_dir(emqx_guard_emqx:backup_dir()) of
        {ok, Names} -> lists:sort([N || N <- Names, lists:prefix("emqx-export-", N), lists:suffix(".tar.gz", N)]);
        {error, enoent} -> []
    end.

%% @doc The settings file's bytes, or `missing'.
-spec settings_file_content() -> binary() | missing.
settings_file_content() ->
    case file:read_file(emqx_guard_settings:settings_file()) of
        {ok, Bin} -> Bin;
        {error, enoent} -> missing
    end.

flush() ->
    receive
        {fake_timer, _, _, _, _} -> flush()
    after 0 ->
        ok
    end.
