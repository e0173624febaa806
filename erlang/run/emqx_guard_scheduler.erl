%% @doc The backup scheduler: arms ONE timer for the next fire, runs at most one backup at a
%% time (`emqx_guard_run' in a monitored worker), and keeps what happened (the last run's
%% outcome, the counts, the last fired instant: `emqx_guard_run_state').
%%
%% Timer rules:
%% <ul>
%% <li>The next fire comes from the NIF in the configured zone, strictly after
%%     max(now, last fired instant).</li>
%% <li>A wait longer than `erlang:send_after/3' allows is chained: the timer
%%     wakes at most `max_wait_ms' later and re-arms.</li>
%% <li>On every wake the wall clock is read again; a wake before the target
%%     (the clock was set back, or a chained wait) re-arms for the same target.</li>
%% <li>The last fired instant is remembered (and persisted): an instant at or
%%     before it never runs again.</li>
%% <li>A fire while a run is going is recorded as skipped (Kubernetes' Forbid).</li>
%% <li>On start, one catch-up run (`emqx_guard_catchup') is started `catchup_delay_ms' after
%%     start if a scheduled instant was missed and lies within `backup_catchup'.</li>
%% <li>In a cluster a scheduled or catch-up fire is exported only by the responsible node
%%     (`emqx_guard_election', inside the run); on the other nodes the run is recorded as
%%     skipped (`last_skip' in the status names the responsible node). A skip is never
%%     notified.</li>
%% <li>The result of every backup made here is told to every other node
%%     (`emqx_guard_election:announce_result/1'); the newest result known in the cluster, this
%%     node's or another's (`cluster_result/1'), is kept as `cluster_run' (status, state
%%     file).</li>
%% <li>The settings are `emqx_guard_settings:get/0'; after a change `settings_changed/0'
%%     re-arms the timer and decides a planned catch-up again.</li>
%% </ul>
%%
%% The clock and the timer are injectable for tests through the `scheduler'
%% application environment key or `start_link/1': a map with the options of
%% `emqx_guard_clock:new/1', `catchup_delay_ms' and `max_wait_ms'.
-module(emqx_guard_scheduler).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([
    start_link/0,
    start_link/1,
    status/0,
    run_now/0,
    settings_changed/0,
    preview/1,
    health/0,
    candidacy/0,
    cluster_result/1
]).

-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([run_now_result/0, status/0]).

-define(SERVER, ?MODULE).
%% The longest delay erlang:send_after/3 accepts.
-define(MAX_SEND_AFTER_MS, 16#FFFFFFFF).
-define(CATCHUP_DELAY_MS, 60000).
%% A backup result told by another node (`emqx_guard_outcome:summary/1').
-define(IS_RESULT(R),
    (is_map(R) andalso is_map_key(result, R) andalso
        (map_get(result, R) =:= ok orelse map_get(result, R) =:= failed) andalso
        is_atom(map_get(node, R)) andalso is_integer(map_get(started_at, R)))
).
%% How long another node's election waits for this scheduler's candidacy.
-define(CANDIDACY_MS, 2000).

-type trigger() :: emqx_guard_outcome:trigger().
-type outcome() :: emqx_guard_outcome:outcome().
%% Why backups are not healthy, a run is refused, the schedule has no next fire: a reason
%% (`emqx_guard_outcome:format_error/1' says it).
-type reason() :: term().
-type run_now_result() :: {ok, outcome()} | {failed, outcome()} | {refused, reason()}.
-type status() :: #{
    now := integer(),
    settings := emqx_guard_settings:settings(),
    supported := boolean(),
    unsupported_reason := undefined | reason(),
    next_fire := undefined | integer(),
    schedule_error := undefined | reason(),
    running := undefined | #{started_at := integer(), trigger := trigger()},
    catchup := undefined | #{instant := integer()},
    last_fired := undefined | integer(),
    last_run := undefined | outcome(),
    last_skip := undefined | outcome(),
    cluster_run := undefined | outcome(),
    counts := #{ok := non_neg_integer(), failed := non_neg_integer(), skipped := non_neg_integer()}
}.

-record(st, {
    clock :: emqx_guard_clock:clock(),
    catchup_delay_ms :: non_neg_integer(),
    max_wait_ms :: pos_integer(),
    settings :: emqx_guard_settings:settings(),
    saved :: emqx_guard_run_state:run_state(),
    supported = true :: boolean(),
    unsupported_reason = undefined :: undefined | reason(),
    %% {TimerRef, Token} of the one schedule timer, and the instant it waits for.
    timer = undefined :: undefined | {term(), reference()},
    target = undefined :: undefined | integer(),
    schedule_error = undefined :: undefined | reason(),
    %% {TimerRef, Token, MissedInstant} of the pending catch-up run.
    catchup = undefined :: emqx_guard_catchup:plan(),
    run = undefined :: undefined | map(),
    waiters = [] :: [gen_server:from()],
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
-spec status() -> status().
status() ->
    gen_server:call(?SERVER, status).

%% @doc Runs one backup now and waits for its result. Refused while a run is
%% going or when this EMQX cannot export.
-spec run_now() -> run_now_result().
run_now() ->
    gen_server:call(?SERVER, run_now, infinity).

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
    St = #st{
        clock = emqx_guard_clock:new(Opts),
        catchup_delay_ms = maps:get(catchup_delay_ms, Opts, ?CATCHUP_DELAY_MS),
        max_wait_ms = min(maps:get(max_wait_ms, Opts, ?MAX_SEND_AFTER_MS), ?MAX_SEND_AFTER_MS),
        settings = emqx_guard_settings:get(),
        saved = emqx_guard_run_state:load()
    },
    {ok, St, {continue, setup}}.

%% @private
handle_continue(setup, St0) ->
    St1 = check_support(St0),
    St2 = arm(St1),
    St3 = maybe_catchup(St2),
    ok = restore_alarms(St3),
    log_schedule(St3),
    {noreply, St3}.

%% @private
handle_call(status, _From, St) ->
    {reply, build_status(St), St};
handle_call(health, _From, St) ->
    {reply, build_health(St), St};
handle_call(candidacy, _From, St) ->
    {reply, #{exporter => exporter(St), last_result => emqx_guard_run_state:newest(St#st.saved)}, St};
handle_call({preview, N}, _From, St = #st{settings = S}) ->
    After = after_instant(St),
    {reply, emqx_guard_cron:preview(maps:get(backup_cron, S), maps:get(backup_timezone, S), After, N), St};
handle_call(settings_changed, _From, St) ->
    St1 = arm(replan_catchup(St#st{settings = emqx_guard_settings:get()})),
    log_schedule(St1),
    {reply, ok, St1};
handle_call({record, Pid, Outcome}, _From, St = #st{run = #{pid := Pid}}) ->
    {reply, ok, recorded(Outcome, St)};
handle_call(run_now, _From, St = #st{supported = false, unsupported_reason = Why}) ->
    {reply, {refused, Why}, St};
handle_call(run_now, _From, St = #st{run = #{started_at := Started}, settings = S}) ->
    {reply, {refused, {already_running, #{started_at => Started, zone => maps:get(backup_timezone, S)}}}, St};
handle_call(run_now, From, St) ->
    St1 = start_run(manual, undefined, St),
    {noreply, St1#st{waiters = [From]}};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({cluster_result, Result}, St) when ?IS_RESULT(Result) ->
    {noreply, cluster_result(Result, St)};
handle_cast({pulled, Newest}, St0) ->
    %% at start, in a cluster: the newest result the other nodes know decides the alarm
    St =
        case ?IS_RESULT(Newest) of
            true -> element(2, adopt(Newest, St0));
            false -> St0
        end,
    ok = emqx_guard_alarm:restore(restore_view(St#st.saved)),
    {noreply, St};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
handle_info({?MODULE, wake, Token}, St = #st{timer = {_, Token}, target = Target}) ->
    Now = now(St),
    St1 = St#st{timer = undefined},
    case Now < Target of
        true ->
            %% Early: a chained long wait, or the clock went back. Same target.
            {noreply, wait_for(Target, St1)};
        false ->
            St2 = fire(Target, St1),
            {noreply, arm(St2)}
    end;
handle_info({?MODULE, catchup, Token}, St = #st{catchup = {_, Token, Instant}}) ->
    St1 = St#st{catchup = undefined},
    case already_fired(Instant, St1) of
        true ->
            {noreply, St1};
        false ->
            ?LOG_INFO(#{msg => emqx_guard_catchup_run, missed_instant => Instant}),
            {noreply, fire_trigger(catchup, Instant, St1)}
    end;
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{run = #{mref := MRef}}) ->
    %% the worker died before it recorded an outcome
    {noreply, ended_without_outcome({worker_died, Reason}, St)};
handle_info(_StaleTimerOrOther, St) ->
    %% e.g. a timer that was replaced: the current one carries another token
    {noreply, St}.

%% @private
terminate(Reason, St) ->
    _ = cancel(St#st.timer, St),
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

check_support(St) ->
    case emqx_guard_emqx:export_supported() of
        true ->
            St#st{supported = true, unsupported_reason = undefined};
        false ->
            Why = {backups_cannot_run, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}},
            ?LOG_WARNING(#{msg => emqx_guard_export_unsupported, reason => emqx_guard_outcome:format_error(Why)}),
            emqx_guard_alarm:unsupported(Why),
            St#st{supported = false, unsupported_reason = Why}
    end.

%% Cancels the schedule timer and arms it again for the next fire.
arm(St0 = #st{supported = false}) ->
    St0#st{timer = cancel(St0#st.timer, St0), target = undefined};
arm(St0 = #st{settings = S}) ->
    St = St0#st{timer = cancel(St0#st.timer, St0), target = undefined},
    Cron = maps:get(backup_cron, S),
    Zone = maps:get(backup_timezone, S),
    case emqx_guard_cron:next_fire(Cron, Zone, after_instant(St)) of
        {ok, Next} ->
            wait_for(Next, St#st{schedule_error = undefined});
        {error, Why} ->
            Error = {schedule_error, Why},
            ?LOG_ERROR(#{msg => emqx_guard_schedule_error, cron => Cron, zone => Zone, reason => emqx_guard_outcome:format_error(Why)}),
            St#st{schedule_error = Error}
    end.

%% Arms the one timer for Target, chaining waits longer than max_wait_ms.
wait_for(Target, St) ->
    Delay = min(max(Target - now(St), 0), St#st.max_wait_ms),
    Token = make_ref(),
    TRef = emqx_guard_clock:send_after(St#st.clock, Delay, {?MODULE, wake, Token}),
    St#st{timer = {TRef, Token}, target = Target}.

%% The next fire is computed strictly after this instant.
after_instant(St) ->
    emqx_guard_cron:search_from(last_fired(St), now(St)).

fire(Target, St) ->
    case already_fired(Target, St) of
        true -> St;
        false -> fire_trigger(scheduled, Target, St)
    end.

%% Marks Instant as fired and either starts a run or records a skip.
fire_trigger(Trigger, Instant, St0 = #st{saved = Saved}) ->
    St = St0#st{saved = emqx_guard_run_state:fired(Instant, Saved)},
    case St#st.run of
        undefined ->
            start_run(Trigger, Instant, St);
        #{started_at := Started} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_backup_skipped,
                trigger => Trigger,
                instant => Instant,
                reason => previous_run_still_running,
                running_since => Started
            }),
            %% a skip like any other: counted, shown as the last skip, never notified
            New = emqx_guard_outcome:new(Trigger, Instant, now(St)),
            Skip = emqx_guard_outcome:finish(emqx_guard_outcome:skip(New, {previous_run_still_running, Started}), 0),
            persist(St#st{saved = emqx_guard_run_state:record(Skip, St#st.saved), last_skip = Skip})
    end.

already_fired(Instant, St) ->
    case last_fired(St) of
        undefined -> false;
        Last -> Instant =< Last
    end.

last_fired(#st{saved = Saved}) ->
    maps:get(last_fired, Saved).

%% A catch-up (emqx_guard_catchup) for an instant missed while the node was down.
maybe_catchup(St = #st{supported = false}) ->
    St;
maybe_catchup(St = #st{clock = Clock, settings = S, saved = Saved}) ->
    St#st{catchup = emqx_guard_catchup:plan(Clock, S, Saved, St#st.catchup_delay_ms, ?MODULE)}.

%% A planned catch-up follows the settings: a new schedule, zone or window (0 turns it off)
%% decides again whether a missed instant is worth a run.
replan_catchup(St = #st{catchup = undefined}) ->
    St;
replan_catchup(St = #st{clock = Clock, catchup = Plan}) ->
    maybe_catchup(St#st{catchup = emqx_guard_catchup:cancel(Clock, Plan)}).

cancel(undefined, _St) ->
    undefined;
cancel({TRef, _Token}, St) ->
    emqx_guard_clock:cancel(St#st.clock, TRef),
    undefined.

now(#st{clock = Clock}) ->
    emqx_guard_clock:now(Clock).

%%--------------------------------------------------------------------
%% Runs
%%--------------------------------------------------------------------

start_run(Trigger, Instant, St = #st{settings = S}) ->
    Started = now(St),
    Request = #{
        trigger => Trigger,
        instant => Instant,
        started_at => Started,
        keep => maps:get(backup_keep, S),
        export_timeout => maps:get(export_timeout, S) * 1000,
        io_limit => maps:get(backup_io_limit, S)
    },
    Self = self(),
    Record = fun(Outcome) -> gen_server:call(Self, {record, self(), Outcome}, infinity) end,
    {Pid, MRef} = spawn_monitor(fun() -> emqx_guard_run:run(Request, #{record => Record}) end),
    ?LOG_INFO(#{msg => emqx_guard_backup_started, trigger => Trigger, instant => Instant}),
    persist(St#st{run = #{pid => Pid, mref => MRef, started_at => Started, trigger => Trigger, instant => Instant}}).

%% The run's worker ended (died, or was stopped) before it recorded an outcome: a failed run.
ended_without_outcome(Reason, St = #st{run = #{started_at := Started, trigger := Trigger, instant := Instant}}) ->
    Died = emqx_guard_outcome:fail(emqx_guard_outcome:new(Trigger, Instant, Started), Reason),
    recorded(emqx_guard_run:finish(emqx_guard_outcome:finish(Died, max(now(St) - Started, 0)), #{}), St).

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
    LastSkip =
        case Result of
            skipped -> Outcome;
            _ -> St#st.last_skip
        end,
    Saved1 = emqx_guard_run_state:record(Outcome, Saved),
    ok =
        case Result of
            skipped -> ok;
            _ -> emqx_guard_election:announce_result(emqx_guard_outcome:summary(Outcome))
        end,
    persist(St#st{run = undefined, waiters = [], saved = Saved1, last_skip = LastSkip}).

%% Another node's backup result: kept when it is the newest known, and then the backup alarm
%% follows it (unless this EMQX cannot export: its own alarm says so).
cluster_result(Result, St0) ->
    case adopt(Result, St0) of
        {newer, St = #st{supported = true}} ->
            ok = emqx_guard_alarm:update(Result),
            St;
        {_, St} ->
            St
    end.

adopt(Result, St = #st{saved = Saved}) ->
    case emqx_guard_run_state:cluster_result(Result, Saved) of
        {newer, Saved1} ->
            ?LOG_INFO((maps:with([node, result, file, error, instant], Result))#{msg => emqx_guard_cluster_backup_result}),
            ok = seen(Result),
            {newer, persist(St#st{saved = Saved1})};
        {known, _} ->
            {known, St}
    end.

%% The alarms at start follow the newest backup result known. Alone, that is what this node
%% recorded; in a cluster the other nodes are asked first (from a process of its own: the
%% answer comes as `{pulled, Newest}'), so a node that was away does not raise an alarm for a
%% failure the cluster has already made good.
restore_alarms(#st{supported = false}) ->
    ok;
restore_alarms(#st{saved = Saved}) ->
    case emqx_guard_emqx:running_nodes() -- [node()] of
        [] ->
            emqx_guard_alarm:restore(restore_view(Saved));
        _Others ->
            Self = self(),
            _ = spawn(fun() -> gen_server:cast(Self, {pulled, maps:get(newest_result, emqx_guard_election:survey())}) end),
            ok
    end.

%% The newest result as the alarm needs it: this node's own last run in full (its off-site part
%% too) when it is the newest.
restore_view(Saved = #{last_run := LastRun}) ->
    case emqx_guard_run_state:newest(Saved) of
        #{started_at := At, node := Node} when Node =:= node(), is_map(LastRun), map_get(started_at, LastRun) =:= At ->
            LastRun;
        Newest ->
            Newest
    end.

persist(St = #st{saved = Saved}) ->
    case emqx_guard_run_state:save(Saved) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_state_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end,
    St.

%% A good backup made anywhere in the cluster counts for this node's dead-man watch.
seen(#{result := ok, started_at := At}) -> emqx_guard_notify:backup_seen(At);
seen(_) -> ok.

%%--------------------------------------------------------------------
%% Status
%%--------------------------------------------------------------------

build_status(St = #st{saved = Saved}) ->
    #{
        now => now(St),
        settings => St#st.settings,
        supported => St#st.supported,
        unsupported_reason => St#st.unsupported_reason,
        next_fire => St#st.target,
        schedule_error => St#st.schedule_error,
        running =>
            case St#st.run of
                undefined -> undefined;
                #{started_at := S, trigger := T} -> #{started_at => S, trigger => T}
            end,
        catchup =>
            case St#st.catchup of
                undefined -> undefined;
                {_, _, Instant} -> #{instant => Instant}
            end,
        last_fired => maps:get(last_fired, Saved),
        last_run => maps:get(last_run, Saved),
        last_skip => St#st.last_skip,
        cluster_run => emqx_guard_run_state:newest(Saved),
        counts => maps:get(counts, Saved)
    }.

%% The answer another node reads (`emqx_guard_election:why_not()'): lines, whatever version
%% that node runs.
exporter(#st{supported = false, unsupported_reason = Why}) ->
    {error, {export_unsupported, emqx_guard_outcome:format_error(Why)}};
exporter(#st{schedule_error = {schedule_error, Why}}) ->
    {error, {schedule_error, emqx_guard_outcome:format_error(Why)}};
exporter(_) ->
    ok.

build_health(#st{supported = false, unsupported_reason = Why}) ->
    {error, Why};
build_health(#st{schedule_error = Why}) when Why =/= undefined ->
    {error, Why};
build_health(#st{saved = Saved}) ->
    %% the cluster's newest backup, made here or on another node
    case emqx_guard_run_state:newest(Saved) of
        #{result := failed, error := Error} = Newest ->
            {error, {last_backup_failed, #{node => maps:get(node, Newest, node()), error => Error}}};
        _ ->
            ok
    end.

log_schedule(#st{target = undefined}) ->
    ok;
log_schedule(St = #st{target = Target, settings = S}) ->
    ?LOG_INFO(#{
        msg => emqx_guard_next_backup,
        cron => maps:get(backup_cron, S),
        zone => maps:get(backup_timezone, S),
        next_fire => format_time(St, Target)
    }).

format_time(#st{settings = S}, Ms) ->
    emqx_guard_render:in_zone(maps:get(backup_timezone, S), Ms).
