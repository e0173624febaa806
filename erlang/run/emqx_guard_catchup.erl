%% @doc The catch-up rule: after a start, one run for a scheduled instant that was missed while
%% the node was down, when it lies within `backup_catchup' (0 turns it off). The latest missed
%% instant only (never a backlog), after the last instant acted upon (the last fire or the last
%% run's start, `emqx_guard_run_state:catchup_ref/1'), started a delay after the decision.
%%
%% A plan is the armed timer and the instant it stands for; the timer sends
%% `{Tag, catchup, Token}' to the process that planned it. After a settings change a plan is
%% decided again (`replan/6').
-module(emqx_guard_catchup).

-include_lib("kernel/include/logger.hrl").

-export([plan/5, replan/6, cancel/2]).

-export_type([plan/0]).

-type plan() :: undefined | {TRef :: term(), Token :: reference(), Instant :: integer()}.

%% @doc The catch-up these settings and this run state call for, armed on Clock (or `undefined').
-spec plan(emqx_guard_clock:clock(), emqx_guard_settings:settings(), emqx_guard_run_state:run_state(),
    non_neg_integer(), atom()) -> plan().
plan(Clock, Settings, RunState, DelayMs, Tag) ->
    #{backup_cron := Cron, backup_timezone := Zone, backup_catchup := WindowS} = Settings,
    Ref = emqx_guard_run_state:catchup_ref(RunState),
    case emqx_guard_cron:catchup_instant(Cron, Zone, Ref, emqx_guard_clock:now(Clock), WindowS) of
        {ok, Missed} ->
            Token = make_ref(),
            TRef = emqx_guard_clock:send_after(Clock, DelayMs, {Tag, catchup, Token}),
            ?LOG_INFO(#{msg => emqx_guard_catchup_planned, missed_instant => Missed, last_recorded => Ref, delay_ms => DelayMs}),
            {TRef, Token, Missed};
        none ->
            undefined;
        {error, Why} ->
            ?LOG_WARNING(#{msg => emqx_guard_catchup_error, reason => emqx_guard_outcome:format_error(Why)}),
            undefined
    end.

%% @doc A planned catch-up follows the settings: a new schedule, zone or window (0 turns it off)
%% decides again whether the missed instant is worth a run (`plan/5'). No plan stays none.
-spec replan(emqx_guard_clock:clock(), plan(), emqx_guard_settings:settings(), emqx_guard_run_state:run_state(),
    non_neg_integer(), atom()) -> plan().
replan(_Clock, undefined, _Settings, _RunState, _DelayMs, _Tag) ->
    undefined;
replan(Clock, Plan, Settings, RunState, DelayMs, Tag) ->
    undefined = cancel(Clock, Plan),
    plan(Clock, Settings, RunState, DelayMs, Tag).

%% @doc Cancels a plan's timer.
-spec cancel(emqx_guard_clock:clock(), plan()) -> undefined.
cancel(_Clock, undefined) ->
    undefined;
cancel(Clock, {TRef, _Token, _Instant}) ->
    emqx_guard_clock:cancel(Clock, TRef),
    undefined.
