%% @doc The backup scheduler: arms ONE timer for the next fire (`emqx_guard_fire_timer': chained
%% long waits, early wakes re-armed), runs at most one backup at a time (`emqx_guard_run' in a
%% monitored worker), and keeps what happened (the last run's outcome, the counts, the last fired
%% instant: `emqx_guard_run_state').
%%
%% Rules:
%% <ul>
%% <li>The next fire comes from the NIF in the configured zone, strictly after max(now, last fired
%%     instant); the last fired instant is remembered (and persisted): an instant at or before it
%%     never runs again.</li>
%% <li>A fire while a run is going is recorded as skipped (Kubernetes' Forbid).</li>
%% <li>On start, one catch-up run (`emqx_guard_catchup') is started `catchup_delay_ms' after
%%     start if a scheduled instant was missed and lies within `backup_catchup'.</li>
%% <li>In a cluster a scheduled or catch-up fire is exported only by the responsible node
%%     (`emqx_guard_election', inside the run); on the other nodes the run is recorded as
%%     skipped (`last_skip' in the status names the responsible node). A skip is never
%%     notified.</li>
%% <li>The result of every backup made here is told to every other node
%%     (`emqx_guard_election:announce_result/1'); the newest result known in the cluster, this
%%     node's or another's (`cluster_result/1', `emqx_guard_cluster_result'), is kept as
%%     `cluster_run' (status, state file); the backup alarm follows it.</li>
%% <li>The settings are `emqx_guard_settings:get/0'; after a change `settings_changed/0'
%%     re-arms the timer and decides a planned catch-up again.</li>
%% </ul>
%% What it says about itself (status, health, candidacy) is `emqx_guard_run_status''s.
%%
%% The clock and the timer are injectable for tests (the `scheduler' application environment key or
%% `start_link/1'): a map with the options of `emqx_guard_clock:new/1', `catchup_delay_ms', `max_wait_ms'.
-module(emqx_guard_scheduler).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([
    start_link/0,
    start_link/1,
    status/0,
    run_now/0,
    run_now/1,
    run_now/2,
    settings_changed/0,
    preview/1,
    health/0,
    candidacy/0,
    cluster_result/1
]).

-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([run_now_result/0]).

-define(SERVER, ?MODULE).
%% The longest single wait of the timer, unless the options say less: what send_after/3 accepts.
-define(MAX_WAIT_MS, 16#FFFFFFFF).
-define(CATCHUP_DELAY_MS, 60000).
%% How long another node's election waits for this scheduler's candidacy.
-define(CANDIDACY_MS, 2000).
%% A call that asks for a backup now (`run_now/0,1').
-define(IS_RUN_NOW(Call), (Call =:= run_now orelse element(1, Call) =:= run_now)).

-type outcome() :: emqx_guard_outcome:outcome().
-type reason() :: emqx_guard_run_status:reason().
-type run_now_result() :: {ok, outcome()} | {failed, outcome()} | {refused, reason()}.

-record(st, {
    clock :: emqx_guard_clock:clock(),
    catchup_delay_ms :: non_neg_integer(),
    settings :: emqx_guard_settings:settings(),
    saved :: emqx_guard_run_state:run_state(),
    %% why this EMQX cannot run backups at all
    unsupported = undefined :: undefined | reason(),
    %% the one schedule timer, and the instant it waits for
    timer :: emqx_guard_fire_timer:timer(),
    schedule_error = undefined :: undefined | reason(),
    %% {TimerRef, Token, MissedInstant} of the pending catch-up run.
    catchup = undefined :: emqx_guard_catchup:plan(),
    run = undefined :: undefined | map(),
    waiters = [] :: [gen_server:from()],
    %% the commands that follow the run's steps (`run_now/1'): `{Pid, Ref}'
    followers = [] :: [{pid(), reference()}],
    last_skip = undefined :: undefined | outcome()
}).

%%--------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------

%% @doc Starts the scheduler with options from the `scheduler' app env.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    start_link(application:get_env(emqx_guard, scheduler, #{})).

%% @doc Starts the scheduler with the given clock/timer options (see module doc).
-spec start_link(map()) -> gen_server:start_ret().
start_link(Opts) when is_map(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc What the scheduler knows: settings, next fire, running run, last run, counts.
-spec status() -> emqx_guard_run_status:status().
status() ->
    gen_server:call(?SERVER, status).

%% @doc Runs one backup now and waits for its result. Refused while a run is
%% going or when this EMQX cannot export.
-spec run_now() -> run_now_result().
run_now() ->
    gen_server:call(?SERVER, run_now, infinity).

%% @doc Starts one backup now and answers at once: `{started, StartedAt}', or `{refused, Why}'
%% as `run_now/0'. The run's steps (`emqx_guard_steps:event()') are then sent to Pid as
%% `{emqx_guard_step, Ref, Event}' as they happen, each after the one before, and last
%% `{emqx_guard_step, Ref, {finished, Result}}' with what `run_now/0' answers (also when the
%% run's worker dies or the plugin stops it). The command that typed it prints them
%% (`emqx_guard_steps_cli').
-spec run_now({pid(), reference()}) -> {started, integer()} | {refused, reason()}.
run_now(Follower) ->
    run_now(Follower, manual).

%% @doc `run_now/1' for a run of Trigger: `manual', or `pre_restore' (a restore's safety backup).
-spec run_now({pid(), reference()}, manual | pre_restore) -> {started, integer()} | {refused, reason()}.
run_now(Follower = {Pid, Ref}, Trigger) when is_pid(Pid), is_reference(Ref), (Trigger =:= manual orelse Trigger =:= pre_restore) ->
    gen_server:call(?SERVER, {run_now, Follower, Trigger}, 15000).

%% @doc The settings changed (`emqx_guard_settings_sync'): re-arms the timer for the new
%% schedule and decides a planned catch-up again. Without a running scheduler nothing happens
%% (it reads the settings when it starts).
-spec settings_changed() -> ok.
settings_changed() ->
    try
        gen_server:call(?SERVER, settings_changed, 30000)
    catch
        exit:{noproc, _} -> ok
    end.

%% @doc The zone's IANA name, the schedule in English and the next N fires
%% (with offsets) as the scheduler's clock sees them.
-spec preview(pos_integer()) ->
    {ok, #{zone_name := binary(), description := binary(), fires := [emqx_guard_cron:fire()]}}
    | {error, emqx_guard_cron:error()}.
preview(N) ->
    gen_server:call(?SERVER, {preview, N}).

%% @doc `ok', or why backups are not healthy: export unsupported, a schedule that cannot be
%% computed, or the cluster's newest backup (made here or on another node) failed.
-spec health() -> ok | {error, reason()}.
health() ->
    gen_server:call(?SERVER, health).

%% @doc What this node's election answers (`emqx_guard_election:candidacy/0'): whether this
%% scheduler can export scheduled backups (export supported, schedule computed) and the newest
%% backup result it knows in the cluster.
-spec candidacy() -> #{exporter := ok | {error, emqx_guard_election:why_not()}, last_result := undefined | outcome()}.
candidacy() ->
    gen_server:call(?SERVER, candidacy, ?CANDIDACY_MS).

%% @doc The result of a backup made on another node (`emqx_guard_outcome:summary/1', told by
%% `emqx_guard_election:announce_result/1'): kept as the cluster's newest result when it is newer
%% than the one known. Never blocks; without a running scheduler nothing happens.
-spec cluster_result(outcome()) -> ok.
cluster_result(Result) when is_map(Result) ->
    gen_server:cast(?SERVER, {cluster_result, Result}).

%%--------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    Clock = emqx_guard_clock:new(Opts),
    St = #st{
        clock = Clock,
        catchup_delay_ms = maps:get(catchup_delay_ms, Opts, ?CATCHUP_DELAY_MS),
        timer = emqx_guard_fire_timer:new(Clock, ?MODULE, maps:get(max_wait_ms, Opts, ?MAX_WAIT_MS)),
        settings = emqx_guard_settings:get(),
        saved = emqx_guard_run_state:load()
    },
    {ok, St, {continue, setup}}.

%% @private
handle_continue(setup, St0) ->
    St1 = St0#st{unsupported = emqx_guard_run_status:unsupported()},
    St2 = arm(St1),
    St3 = maybe_catchup(St2),
    ok = emqx_guard_cluster_result:restore_alarms(St3#st.saved, self(), St3#st.unsupported),
    ok = emqx_guard_run_status:log_schedule(emqx_guard_fire_timer:target(St3#st.timer), St3#st.settings),
    {noreply, St3}.

%% @private
handle_call(status, _From, St) ->
    {reply, emqx_guard_run_status:status(view(St)), St};
handle_call(health, _From, St) ->
    {reply, emqx_guard_run_status:health(view(St)), St};
handle_call(candidacy, _From, St) ->
    Exporter = emqx_guard_run_status:exporter(view(St)),
    {reply, #{exporter => Exporter, last_result => emqx_guard_run_state:newest(St#st.saved)}, St};
handle_call({preview, N}, _From, St = #st{settings = S}) ->
    After = after_instant(St),
    {reply, emqx_guard_cron:preview(maps:get(backup_cron, S), maps:get(backup_timezone, S), After, N), St};
handle_call(settings_changed, _From, St) ->
    St1 = arm(replan_catchup(St#st{settings = emqx_guard_settings:get()})),
    ok = emqx_guard_run_status:log_schedule(emqx_guard_fire_timer:target(St1#st.timer), St1#st.settings),
    {reply, ok, St1};
handle_call({record, Pid, Outcome}, _From, St = #st{run = #{pid := Pid}}) ->
    {reply, ok, recorded(Outcome, St)};
handle_call({step, Pid, Event}, _From, St = #st{run = #{pid := Pid}}) ->
    _ = [F ! {emqx_guard_step, Ref, Event} || {F, Ref} <- St#st.followers],
    {reply, ok, St};
handle_call(Run, _From, St = #st{unsupported = Why}) when Why =/= undefined, ?IS_RUN_NOW(Run) ->
    {reply, {refused, Why}, St};
handle_call(Run, _From, St = #st{run = #{started_at := Started}, settings = S}) when ?IS_RUN_NOW(Run) ->
    {reply, {refused, {already_running, #{started_at => Started, zone => maps:get(backup_timezone, S)}}}, St};
handle_call(run_now, From, St) ->
    St1 = start_run(manual, undefined, St),
    {noreply, St1#st{waiters = [From]}};
handle_call({run_now, Follower, Trigger}, _From, St) ->
    St1 = start_run(Trigger, undefined, St#st{followers = [Follower]}),
    {reply, {started, maps:get(started_at, St1#st.run)}, St1};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({cluster_result, Result}, St) ->
    case emqx_guard_cluster_result:is_result(Result) of
        true -> {noreply, cluster_result(Result, St)};
        false -> {noreply, St}
    end;
handle_cast({pulled, Newest}, St) ->
    %% at start, in a cluster: the newest result the other nodes know decides the alarm
    {noreply, persist(St#st{saved = emqx_guard_cluster_result:pulled(Newest, St#st.saved)})};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
handle_info({?MODULE, wake, Token}, St) ->
    case emqx_guard_fire_timer:woke(Token, St#st.timer) of
        {due, Target, Timer} -> {noreply, arm(fire(scheduled, Target, St#st{timer = Timer}))};
        %% a chained long wait, or the clock went back: armed again for the same target
        {early, Timer} -> {noreply, St#st{timer = Timer}};
        %% a timer that was replaced: the current one carries another token
        stale -> {noreply, St}
    end;
handle_info({?MODULE, catchup, Token}, St = #st{catchup = {_, Token, Instant}}) ->
    {noreply, fire(catchup, Instant, St#st{catchup = undefined})};
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{run = #{mref := MRef}}) ->
    %% the worker died before it recorded an outcome
    {noreply, ended_without_outcome({worker_died, Reason}, St)};
handle_info(_StaleCatchupOrOther, St) ->
    {noreply, St}.

%% @private
terminate(Reason, St) ->
    _ = emqx_guard_fire_timer:clear(St#st.timer),
    _ = emqx_guard_catchup:cancel(St#st.clock, St#st.catchup),
    case St#st.run of
        #{pid := Pid} ->
            %% its background job (a verify, a prune) is cancelled as the process goes; the run
            %% is recorded as failed and whoever waits for it is answered
            ?LOG_WARNING(#{msg => emqx_guard_backup_interrupted, reason => plugin_stopping}),
            exit(Pid, kill),
            _ = ended_without_outcome({plugin_stopped, Reason}, St),
            ok;
        undefined ->
            ok
    end.

%% @private
%% Status and crash reports show the settings (state, last message, sys log) redacted: the
%% SMTP password never reaches a report.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_redact:status(Status).

%%--------------------------------------------------------------------
%% Scheduling
%%--------------------------------------------------------------------

%% Cancels the schedule timer and arms it again for the next fire.
arm(St0 = #st{unsupported = Why}) when Why =/= undefined ->
    St0#st{timer = emqx_guard_fire_timer:clear(St0#st.timer)};
arm(St0 = #st{settings = S}) ->
    St = St0#st{timer = emqx_guard_fire_timer:clear(St0#st.timer)},
    Cron = maps:get(backup_cron, S),
    Zone = maps:get(backup_timezone, S),
    case emqx_guard_cron:next_fire(Cron, Zone, after_instant(St)) of
        {ok, Next} ->
            St#st{timer = emqx_guard_fire_timer:set(Next, St#st.timer), schedule_error = undefined};
        {error, Why} ->
            ?LOG_ERROR(#{msg => emqx_guard_schedule_error, cron => Cron, zone => Zone, reason => emqx_guard_outcome:format_error(Why)}),
            St#st{schedule_error = {schedule_error, Why}}
    end.

%% The next fire is computed strictly after this instant.
after_instant(St) ->
    emqx_guard_cron:search_from(maps:get(last_fired, St#st.saved), now(St)).

%% Unless Instant was fired already: marks it as fired and either starts a run or records a skip.
fire(Trigger, Instant, St = #st{saved = Saved}) ->
    case emqx_guard_run_state:already_fired(Instant, Saved) of
        true -> St;
        false -> fired(Trigger, Instant, St#st{saved = emqx_guard_run_state:fired(Instant, Saved)})
    end.

fired(Trigger, Instant, St = #st{run = undefined}) ->
    start_run(Trigger, Instant, St);
fired(Trigger, Instant, St = #st{run = #{started_at := Started}}) ->
    Why = {previous_run_still_running, Started},
    ?LOG_WARNING(#{msg => emqx_guard_backup_skipped, trigger => Trigger, instant => Instant, reason => Why}),
    %% a skip like any other: counted, shown as the last skip, never notified
    Skip = emqx_guard_outcome:skipped(Trigger, Instant, now(St), Why),
    persist(St#st{saved = emqx_guard_run_state:record(Skip, St#st.saved), last_skip = Skip}).

%% A catch-up (emqx_guard_catchup) for an instant missed while the node was down.
maybe_catchup(St = #st{unsupported = Why}) when Why =/= undefined ->
    St;
maybe_catchup(St = #st{clock = Clock, settings = S, saved = Saved}) ->
    St#st{catchup = emqx_guard_catchup:plan(Clock, S, Saved, St#st.catchup_delay_ms, ?MODULE)}.

%% A planned catch-up follows the settings (`emqx_guard_catchup:replan/6').
replan_catchup(St = #st{clock = Clock, settings = S, saved = Saved}) ->
    St#st{catchup = emqx_guard_catchup:replan(Clock, St#st.catchup, S, Saved, St#st.catchup_delay_ms, ?MODULE)}.

now(#st{clock = Clock}) ->
    emqx_guard_clock:now(Clock).

%%--------------------------------------------------------------------
%% Runs
%%--------------------------------------------------------------------

%% The run in a worker process; it hands its outcome back (`{record, Worker, Outcome}'). The
%% plugin API's list of runs follows each one (`emqx_guard_api_jobs:observe/2').
start_run(Trigger, Instant, St0 = #st{settings = S}) ->
    St = St0#st{followers = emqx_guard_api_jobs:observe(Trigger, St0#st.followers)},
    Self = self(),
    Record = fun(Outcome) -> gen_server:call(Self, {record, self(), Outcome}, infinity) end,
    Deps =
        case St#st.followers of
            [] -> #{record => Record};
            %% each step a call: its order with the run's end is kept for the followers
            _ -> #{record => Record, report => emqx_guard_steps:to_server(Self)}
        end,
    persist(St#st{run = emqx_guard_run:start(emqx_guard_run:request(Trigger, Instant, now(St), S), Deps)}).

%% The run's worker ended (died, or was stopped) before it recorded an outcome: a failed run.
ended_without_outcome(Reason, St = #st{run = Run}) ->
    recorded(emqx_guard_run:ended(Run, Reason, now(St)), St).

%% The run's outcome: kept (skipped runs only in memory), counted, persisted, and the answer to
%% whoever waits for it (`run_now/0').
recorded(Outcome = #{result := Result}, St = #st{run = #{mref := MRef}, saved = Saved}) ->
    demonitor(MRef, [flush]),
    Reply =
        case Result of
            ok -> {ok, Outcome};
            failed -> {failed, Outcome};
            %% its line: another node exports it (the skip's reason is a bare tag, see
            %% emqx_guard_outcome:skip/2)
            skipped -> {refused, maps:get(error, Outcome)}
        end,
    lists:foreach(fun(From) -> gen_server:reply(From, Reply) end, St#st.waiters),
    _ = [F ! {emqx_guard_step, Ref, {finished, Reply}} || {F, Ref} <- St#st.followers],
    St1 = St#st{run = undefined, waiters = [], followers = [], saved = emqx_guard_run_state:record(Outcome, Saved)},
    case Result of
        skipped ->
            persist(St1#st{last_skip = Outcome});
        _ ->
            ok = emqx_guard_election:announce_result(emqx_guard_outcome:summary(Outcome)),
            persist(St1)
    end.

%% Another node's backup result: kept when it is the newest known, and then the backup alarm
%% follows it (unless this EMQX cannot export: its own alarm says so).
cluster_result(Result, St) ->
    case emqx_guard_cluster_result:follow(Result, St#st.saved, St#st.unsupported) of
        {newer, Saved} -> persist(St#st{saved = Saved});
        known -> St
    end.

persist(St = #st{saved = Saved}) ->
    ok = emqx_guard_run_state:persist(Saved),
    St.

%%--------------------------------------------------------------------
%% Status
%%--------------------------------------------------------------------

%% The state as `emqx_guard_run_status' reads it.
view(St = #st{}) ->
    #{
        now => now(St),
        settings => St#st.settings,
        unsupported => St#st.unsupported,
        next_fire => emqx_guard_fire_timer:target(St#st.timer),
        schedule_error => St#st.schedule_error,
        run => St#st.run,
        catchup => St#st.catchup,
        saved => St#st.saved,
        last_skip => St#st.last_skip
    }.
