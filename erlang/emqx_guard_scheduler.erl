%% @doc The backup scheduler: owns the settings in memory, arms ONE timer for
%% the next fire, runs at most one backup at a time in a monitored worker, and
%% records what happened.
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
%% <li>On start, one catch-up run is started `catchup_delay_ms' after start if a
%%     scheduled instant was missed since the last recorded run and lies within
%%     `backup_catchup'. Never a backlog.</li>
%% <li>In a cluster a scheduled or catch-up fire is exported only by the responsible node
%%     (`emqx_guard_cluster:run/3', in the worker); on the other nodes it is recorded as
%%     skipped (`last_skip' in the status names the responsible node).</li>
%% </ul>
%%
%% The clock and the timer are injectable for tests through the `scheduler'
%% application environment key or `start_link/1': a map with any of
%% `now' (fun() -> UnixMs), `send_after' (fun(DelayMs, Pid, Msg) -> TRef),
%% `cancel_timer' (fun(TRef) -> term()), `catchup_delay_ms' and `max_wait_ms'.
-module(emqx_guard_scheduler).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([
    start_link/0,
    start_link/1,
    status/0,
    run_now/0,
    reschedule/0,
    settings/0,
    update_settings/1,
    preview/1,
    health/0
]).

-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([run_record/0, run_now_result/0, status/0]).

-define(SERVER, ?MODULE).
%% The longest delay erlang:send_after/3 accepts.
-define(MAX_SEND_AFTER_MS, 16#FFFFFFFF).
-define(CATCHUP_DELAY_MS, 60000).
%% A last fired instant further ahead than this means the clock was wrong when it ran.
-define(FUTURE_LAST_FIRED_MS, 86400000).
-define(ALARM_RECOVERED, <<"emqx_guard: the last backup succeeded">>).

-type trigger() :: scheduled | catchup | manual.
-type run_record() :: #{
    started_at := integer(),
    duration_ms := non_neg_integer(),
    trigger := trigger(),
    result := ok | failed,
    instant => integer(),
    file => binary(),
    path => binary(),
    size => non_neg_integer(),
    sha256 => binary(),
    pruned => non_neg_integer(),
    error => binary(),
    warning => binary()
}.
%% A fire another node of the cluster exports (see emqx_guard_cluster).
-type skip_record() :: #{
    at := integer(),
    trigger := trigger(),
    instant := integer() | undefined,
    reason := atom(),
    error := binary(),
    responsible => node()
}.
-type run_now_result() :: {ok, run_record()} | {failed, run_record()} | {refused, binary()}.
-type status() :: #{
    now := integer(),
    settings := emqx_guard_settings:settings(),
    supported := boolean(),
    unsupported_reason := undefined | binary(),
    next_fire := undefined | integer(),
    schedule_error := undefined | binary(),
    running := undefined | #{started_at := integer(), trigger := trigger()},
    catchup := undefined | #{instant := integer()},
    last_fired := undefined | integer(),
    last_run := undefined | run_record(),
    last_skip := undefined | skip_record(),
    counts := #{ok := non_neg_integer(), failed := non_neg_integer(), skipped := non_neg_integer()}
}.

-record(st, {
    now :: fun(() -> integer()),
    send_after :: fun((non_neg_integer(), pid(), term()) -> term()),
    cancel_timer :: fun((term()) -> term()),
    catchup_delay_ms :: non_neg_integer(),
    max_wait_ms :: pos_integer(),
    settings :: emqx_guard_settings:settings(),
    saved :: emqx_guard_settings:run_state(),
    supported = true :: boolean(),
    unsupported_reason = undefined :: undefined | binary(),
    %% {TimerRef, Token} of the one schedule timer, and the instant it waits for.
    timer = undefined :: undefined | {term(), reference()},
    target = undefined :: undefined | integer(),
    schedule_error = undefined :: undefined | binary(),
    %% {TimerRef, Token, MissedInstant} of the pending catch-up run.
    catchup = undefined :: undefined | {term(), reference(), integer()},
    run = undefined :: undefined | map(),
    waiters = [] :: [gen_server:from()],
    last_skip = undefined :: undefined | skip_record()
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

%% @doc Recomputes the next fire from the current clock and re-arms the timer.
-spec reschedule() -> ok.
reschedule() ->
    gen_server:call(?SERVER, reschedule).

%% @doc The settings in use.
-spec settings() -> emqx_guard_settings:settings().
settings() ->
    gen_server:call(?SERVER, settings).

%% @doc Validates the changes (atom or binary keys), persists the new settings
%% and reschedules at once. On any error nothing changes.
-spec update_settings(map()) -> {ok, emqx_guard_settings:settings()} | {error, binary()}.
update_settings(Changes) ->
    gen_server:call(?SERVER, {update_settings, Changes}).

%% @doc The zone's IANA name, the schedule in English and the next N fires
%% (with offsets) as the scheduler's clock sees them.
-spec preview(pos_integer()) ->
    {ok, #{zone_name := binary(), description := binary(), fires := [emqx_guard_schedule:fire()]}}
    | {error, binary()}.
preview(N) ->
    gen_server:call(?SERVER, {preview, N}).

%% @doc `ok', or one line saying why backups are not healthy: export
%% unsupported, a schedule that cannot be computed, or a failed last run.
-spec health() -> ok | {error, binary()}.
health() ->
    gen_server:call(?SERVER, health).

%%--------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    St = #st{
        now = maps:get(now, Opts, fun wall_clock_ms/0),
        send_after = maps:get(send_after, Opts, fun erlang:send_after/3),
        cancel_timer = maps:get(cancel_timer, Opts, fun default_cancel/1),
        catchup_delay_ms = maps:get(catchup_delay_ms, Opts, ?CATCHUP_DELAY_MS),
        max_wait_ms = min(maps:get(max_wait_ms, Opts, ?MAX_SEND_AFTER_MS), ?MAX_SEND_AFTER_MS),
        settings = emqx_guard_settings:load(),
        saved = emqx_guard_settings:load_state()
    },
    {ok, St, {continue, setup}}.

%% @private
handle_continue(setup, St0) ->
    St1 = check_support(St0),
    St2 = arm(St1),
    St3 = maybe_catchup(St2),
    restore_alarm(St3),
    log_schedule(St3),
    {noreply, St3}.

%% @private
handle_call(status, _From, St) ->
    {reply, build_status(St), St};
handle_call(settings, _From, St) ->
    {reply, St#st.settings, St};
handle_call(health, _From, St) ->
    {reply, build_health(St), St};
handle_call({preview, N}, _From, St = #st{settings = S}) ->
    After = after_instant(St),
    {reply, emqx_guard_schedule:preview(maps:get(backup_cron, S), maps:get(backup_timezone, S), After, N), St};
handle_call(reschedule, _From, St) ->
    St1 = arm(St),
    log_schedule(St1),
    {reply, ok, St1};
handle_call({update_settings, Changes}, _From, St = #st{settings = Old}) ->
    case emqx_guard_settings:validate_changes(Changes) of
        {ok, Valid} ->
            New = maps:merge(Old, Valid),
            case emqx_guard_settings:save(New) of
                ok ->
                    log_changes(Old, New),
                    St1 = arm(replan_catchup(St#st{settings = New})),
                    log_schedule(St1),
                    {reply, {ok, New}, St1};
                {error, _} = Error ->
                    {reply, Error, St}
            end;
        {error, _} = Error ->
            {reply, Error, St}
    end;
handle_call(run_now, _From, St = #st{supported = false, unsupported_reason = Why}) ->
    {reply, {refused, Why}, St};
handle_call(run_now, _From, St = #st{run = #{started_at := Started}}) ->
    Line = iolist_to_binary([
        <<"a backup is already running (started ">>,
        format_time(St, Started),
        <<"); not starting another one">>
    ]),
    {reply, {refused, Line}, St};
handle_call(run_now, From, St) ->
    St1 = start_run(manual, undefined, St),
    {noreply, St1#st{waiters = [From]}};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
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
handle_info({?MODULE, run_done, Pid, Result}, St = #st{run = #{pid := Pid, mref := MRef}}) ->
    demonitor(MRef, [flush]),
    {noreply, finish_run({emqx_guard_run_done, Result}, St)};
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{run = #{mref := MRef}}) ->
    %% the worker died without a result
    {noreply, finish_run(Reason, St)};
handle_info({?MODULE, _Kind, _StaleToken}, St) ->
    %% A timer that was replaced; the current one carries another token.
    {noreply, St};
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
terminate(_Reason, St) ->
    _ = cancel(St#st.timer, St),
    case St#st.catchup of
        {TRef, _, _} -> _ = safe_cancel(TRef, St);
        undefined -> ok
    end,
    case St#st.run of
        #{pid := Pid} ->
            ?LOG_WARNING(#{msg => emqx_guard_backup_interrupted, reason => plugin_stopping}),
            exit(Pid, kill);
        undefined ->
            ok
    end,
    ok.

%% @private
%% Status and crash reports show the settings (state, last message, sys log) redacted: the
%% SMTP password never reaches a report.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_notify_config:redacted_status(Status).

%% Logs only the keys that changed, old and new value, secrets redacted.
log_changes(Old, New) ->
    Changed = maps:keys(emqx_guard_settings:changed(Old, New)),
    ?LOG_INFO(#{
        msg => emqx_guard_settings_changed,
        old => emqx_guard_notify_config:redacted(maps:with(Changed, Old)),
        new => emqx_guard_notify_config:redacted(maps:with(Changed, New))
    }).

%%--------------------------------------------------------------------
%% Scheduling
%%--------------------------------------------------------------------

check_support(St) ->
    case safe(fun() -> emqx_guard_emqx:export_supported() end, false) of
        true ->
            St#st{supported = true, unsupported_reason = undefined};
        false ->
            Why =
                <<"backups cannot run: this EMQX has no data export (emqx_mgmt_data_backup is missing; "
                  "EMQX 5.1 or newer is needed)">>,
            ?LOG_WARNING(#{msg => emqx_guard_export_unsupported, reason => Why}),
            alarm(Why, #{reason => Why}),
            St#st{supported = false, unsupported_reason = Why}
    end.

%% Cancels the schedule timer and arms it again for the next fire.
arm(St0 = #st{supported = false}) ->
    St0#st{timer = cancel(St0#st.timer, St0), target = undefined};
arm(St0 = #st{settings = S}) ->
    St = St0#st{timer = cancel(St0#st.timer, St0), target = undefined},
    Cron = maps:get(backup_cron, S),
    Zone = maps:get(backup_timezone, S),
    case emqx_guard_schedule:next_fire(Cron, Zone, after_instant(St)) of
        {ok, Next} ->
            wait_for(Next, St#st{schedule_error = undefined});
        {error, Why} ->
            ?LOG_ERROR(#{msg => emqx_guard_schedule_error, cron => Cron, zone => Zone, reason => Why}),
            St#st{schedule_error = Why}
    end.

%% Arms the one timer for Target, chaining waits longer than max_wait_ms.
wait_for(Target, St) ->
    Delay = min(max(Target - now(St), 0), St#st.max_wait_ms),
    Token = make_ref(),
    TRef = (St#st.send_after)(Delay, self(), {?MODULE, wake, Token}),
    St#st{timer = {TRef, Token}, target = Target}.

%% The next fire is computed strictly after this instant.
after_instant(St) ->
    Now = now(St),
    case last_fired(St) of
        undefined ->
            Now;
        Last when Last > Now + ?FUTURE_LAST_FIRED_MS ->
            %% An instant already run never runs again, so scheduled backups wait for it; say so,
            %% as the clock was probably far ahead when that run happened.
            ?LOG_WARNING(#{
                msg => emqx_guard_last_fired_in_future,
                last_fired => Last,
                now => Now,
                hint => <<"scheduled backups resume after this instant; backup_now still works">>
            }),
            Last;
        Last ->
            max(Now, Last)
    end.

fire(Target, St) ->
    case already_fired(Target, St) of
        true -> St;
        false -> fire_trigger(scheduled, Target, St)
    end.

%% Marks Instant as fired and either starts a run or records a skip.
fire_trigger(Trigger, Instant, St0 = #st{saved = Saved}) ->
    St = St0#st{saved = Saved#{last_fired := Instant}},
    case St#st.run of
        undefined ->
            start_run(Trigger, Instant, St);
        #{started_at := Started} ->
            Counts = maps:get(counts, Saved),
            St1 = St#st{saved = (St#st.saved)#{counts := Counts#{skipped := maps:get(skipped, Counts) + 1}}},
            ?LOG_WARNING(#{
                msg => emqx_guard_backup_skipped,
                trigger => Trigger,
                instant => Instant,
                reason => previous_run_still_running,
                running_since => Started
            }),
            persist(St1)
    end.

already_fired(Instant, St) ->
    case last_fired(St) of
        undefined -> false;
        Last -> Instant =< Last
    end.

last_fired(#st{saved = Saved}) ->
    maps:get(last_fired, Saved).

maybe_catchup(St = #st{supported = false}) ->
    St;
maybe_catchup(St = #st{settings = S, saved = Saved}) ->
    Ref = latest([maps:get(last_fired, Saved), last_run_start(Saved)]),
    Now = now(St),
    case
        emqx_guard_schedule:catchup_instant(
            maps:get(backup_cron, S), maps:get(backup_timezone, S), Ref, Now, maps:get(backup_catchup, S)
        )
    of
        {ok, Missed} ->
            Token = make_ref(),
            Delay = St#st.catchup_delay_ms,
            TRef = (St#st.send_after)(Delay, self(), {?MODULE, catchup, Token}),
            ?LOG_INFO(#{
                msg => emqx_guard_catchup_planned,
                missed_instant => Missed,
                last_recorded => Ref,
                delay_ms => Delay
            }),
            St#st{catchup = {TRef, Token, Missed}};
        none ->
            St;
        {error, Why} ->
            ?LOG_WARNING(#{msg => emqx_guard_catchup_error, reason => Why}),
            St
    end.

%% A planned catch-up follows the settings: a new schedule, zone or window (0 turns it off)
%% decides again whether a missed instant is worth a run.
replan_catchup(St = #st{catchup = undefined}) ->
    St;
replan_catchup(St = #st{catchup = {TRef, _Token, _Missed}}) ->
    _ = safe_cancel(TRef, St),
    maybe_catchup(St#st{catchup = undefined}).

last_run_start(#{last_run := #{started_at := S}}) -> S;
last_run_start(_) -> undefined.

latest(List) ->
    case [X || X <- List, is_integer(X)] of
        [] -> undefined;
        Ints -> lists:max(Ints)
    end.

cancel(undefined, _St) ->
    undefined;
cancel({TRef, _Token}, St) ->
    _ = safe_cancel(TRef, St),
    undefined.

safe_cancel(TRef, St) ->
    safe(fun() -> (St#st.cancel_timer)(TRef) end, false).

default_cancel(TRef) when is_reference(TRef) ->
    erlang:cancel_timer(TRef);
default_cancel(_) ->
    false.

now(#st{now = Now}) ->
    Now().

%%--------------------------------------------------------------------
%% Runs
%%--------------------------------------------------------------------

start_run(Trigger, Instant, St = #st{settings = S}) ->
    Args = #{
        keep => maps:get(backup_keep, S),
        export_timeout => maps:get(export_timeout, S) * 1000
    },
    Self = self(),
    {Pid, MRef} = spawn_monitor(fun() -> Self ! {?MODULE, run_done, self(), run_backup(Trigger, Instant, Args)} end),
    Started = now(St),
    ?LOG_INFO(#{msg => emqx_guard_backup_started, trigger => Trigger, instant => Instant}),
    persist(St#st{run = #{pid => Pid, mref => MRef, started_at => Started, trigger => Trigger, instant => Instant}}).

%% Runs in the worker. In a cluster only the responsible node exports a scheduled instant
%% (emqx_guard_cluster). Anything the backup module throws is a failure report.
run_backup(Trigger, Instant, Args) ->
    try
        emqx_guard_cluster:run(Trigger, Instant, Args)
    catch
        Class:Reason:Stack ->
            {error, #{
                error => iolist_to_binary(io_lib:format("the backup crashed: ~tp:~tp", [Class, Reason])),
                reason => {Class, Reason, Stack}
            }}
    end.

finish_run({emqx_guard_run_done, {skipped, R}}, St = #st{run = Run, saved = Saved}) when is_map(R) ->
    %% another node of the cluster exports this instant
    #{trigger := Trigger, instant := Instant} = Run,
    Skip = maps:merge(
        maps:with([responsible], R),
        #{at => now(St), trigger => Trigger, instant => Instant, reason => maps:get(reason, R, skipped),
          error => maps:get(error, R, <<"skipped">>)}
    ),
    ?LOG_INFO(Skip#{msg => emqx_guard_backup_skipped}),
    Counts = maps:get(counts, Saved),
    lists:foreach(fun(From) -> gen_server:reply(From, {refused, maps:get(error, Skip)}) end, St#st.waiters),
    persist(St#st{
        run = undefined,
        waiters = [],
        last_skip = Skip,
        saved = Saved#{counts := Counts#{skipped := maps:get(skipped, Counts) + 1}}
    });
finish_run(DownReason, St = #st{run = Run, saved = Saved}) ->
    #{started_at := Started, trigger := Trigger, instant := Instant} = Run,
    Now = now(St),
    {Outcome, Report} =
        case DownReason of
            {emqx_guard_run_done, {ok, R}} when is_map(R) -> {ok, R};
            {emqx_guard_run_done, {error, R}} when is_map(R) -> {failed, R};
            {emqx_guard_run_done, Other} -> {failed, #{error => text("unexpected backup result: ~tp", [Other])}};
            Crash -> {failed, #{error => text("the backup process died: ~tp", [Crash])}}
        end,
    Record = run_record(Outcome, Report, Started, Now, Trigger, Instant),
    Counts = maps:get(counts, Saved),
    Key =
        case Outcome of
            ok -> ok;
            failed -> failed
        end,
    Saved1 = Saved#{last_run := Record, counts := Counts#{Key := maps:get(Key, Counts) + 1}},
    report(Outcome, Record),
    %% e-mail / webhook: a cast, never blocks or delays the run (emqx_guard_notify)
    ok = emqx_guard_notify:run_finished(Record),
    Result =
        case Outcome of
            ok -> {ok, Record};
            failed -> {failed, Record}
        end,
    lists:foreach(fun(From) -> gen_server:reply(From, Result) end, St#st.waiters),
    persist(St#st{run = undefined, waiters = [], saved = Saved1}).

run_record(Outcome, Report, Started, Now, Trigger, Instant) ->
    Base = #{
        started_at => Started,
        duration_ms => duration(Report, Started, Now),
        trigger => Trigger,
        result => Outcome
    },
    Optional = [
        {instant, Instant, fun is_integer/1},
        {file, to_bin(maps:get(file, Report, undefined)), fun is_binary/1},
        {path, to_bin(maps:get(path, Report, undefined)), fun is_binary/1},
        {size, maps:get(size, Report, undefined), fun is_integer/1},
        {sha256, to_bin(maps:get(sha256, Report, undefined)), fun is_binary/1},
        {pruned, pruned_count(maps:get(pruned, Report, undefined)), fun is_integer/1},
        {error, error_line(Outcome, Report), fun is_binary/1},
        {warning, warning_line(Report), fun is_binary/1}
    ],
    lists:foldl(
        fun({K, V, Check}, Acc) ->
            case Check(V) of
                true -> Acc#{K => V};
                false -> Acc
            end
        end,
        Base,
        Optional
    ).

duration(#{duration_ms := D}, _Started, _Now) when is_integer(D), D >= 0 -> D;
duration(_, Started, Now) -> max(Now - Started, 0).

pruned_count(L) when is_list(L) -> length(L);
pruned_count(N) when is_integer(N) -> N;
pruned_count(_) -> undefined.

error_line(ok, _Report) ->
    undefined;
error_line(failed, Report) ->
    case maps:get(error, Report, undefined) of
        B when is_binary(B) -> B;
        undefined -> text("~tp", [maps:get(reason, Report, unknown)]);
        Other -> text("~tp", [Other])
    end.

%% A good backup whose retention or file mode step failed.
warning_line(Report) ->
    case [W || K <- [prune_error, mode_error], W <- [maps:get(K, Report, undefined)], is_binary(W)] of
        [] -> undefined;
        Warnings -> iolist_to_binary(lists:join(<<"; ">>, Warnings))
    end.

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> undefined
    end;
to_bin(_) -> undefined.

report(ok, Record) ->
    ?LOG_INFO(Record#{msg => emqx_guard_backup_done}),
    safe(fun() -> emqx_guard_emqx:deactivate_alarm(?ALARM_RECOVERED) end, ok);
report(failed, Record = #{error := Error}) ->
    ?LOG_ERROR(Record#{msg => emqx_guard_backup_failed}),
    alarm(<<"emqx_guard: backup failed: ", Error/binary>>, maps:with([started_at, trigger, error], Record)).

%% After a restart the alarm (in memory, per node) is gone: raise it again if
%% the recorded last run failed.
restore_alarm(#st{saved = #{last_run := #{result := failed, error := Error} = Run}}) ->
    alarm(<<"emqx_guard: backup failed: ", Error/binary>>, maps:with([started_at, trigger, error], Run));
restore_alarm(_) ->
    ok.

alarm(Message, Details) ->
    safe(fun() -> emqx_guard_emqx:activate_alarm(Details, Message) end, ok).

%% The OS wall clock, read afresh: erlang:system_time/1 does not follow a clock that is set
%% back or forward unless the node runs with time warp, and a cron schedule is wall-clock time.
%% (Timers themselves run on monotonic time; every wake compares against this clock.)
wall_clock_ms() ->
    os:system_time(millisecond).

persist(St = #st{saved = Saved}) ->
    case emqx_guard_settings:save_state(Saved) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_state_not_saved, reason => Why})
    end,
    St.

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
        counts => maps:get(counts, Saved)
    }.

build_health(#st{supported = false, unsupported_reason = Why}) ->
    {error, Why};
build_health(#st{schedule_error = Why}) when is_binary(Why) ->
    {error, <<"the schedule cannot be computed: ", Why/binary>>};
build_health(#st{saved = #{last_run := #{result := failed, error := Error}}}) ->
    {error, <<"the last backup failed: ", Error/binary>>};
build_health(_) ->
    ok.

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
    emqx_guard_schedule:format_in_zone(maps:get(backup_timezone, S), Ms).

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

text(Fmt, Args) ->
    iolist_to_binary(io_lib:format(Fmt, Args)).

safe(Fun, Default) ->
    try
        Fun()
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => emqx_guard_call_failed, class => Class, reason => Reason}),
            Default
    end.
