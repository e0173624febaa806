%% @doc What the scheduler (`emqx_guard_scheduler') says about itself, made from a view of its
%% state: `status/1' (`guard backup_status', the cluster view), `health/1' (the dashboard's health
%% check) and `exporter/1' (whether this node can export scheduled backups, as its election
%% candidacy answers other nodes); and whether this EMQX can run backups at all
%% (`unsupported/0', checked when the scheduler starts).
-module(emqx_guard_run_status).

-include_lib("kernel/include/logger.hrl").

-export([status/1, health/1, exporter/1, unsupported/0]).

-export_type([view/0, status/0, reason/0]).

%% Why backups are not healthy, a run is refused, the schedule has no next fire
%% (`emqx_guard_outcome:format_error/1' says it).
-type reason() :: term().
-type outcome() :: emqx_guard_outcome:outcome().
%% The scheduler's state as these functions read it.
-type view() :: #{
    now := integer(),
    settings := emqx_guard_settings:settings(),
    %% why this EMQX cannot run backups at all
    unsupported := undefined | reason(),
    next_fire := undefined | integer(),
    schedule_error := undefined | reason(),
    run := undefined | #{started_at := integer(), trigger := emqx_guard_outcome:trigger(), atom() => term()},
    catchup := emqx_guard_catchup:plan(),
    saved := emqx_guard_run_state:run_state(),
    last_skip := undefined | outcome()
}.
-type status() :: #{
    now := integer(),
    settings := emqx_guard_settings:settings(),
    supported := boolean(),
    unsupported_reason := undefined | reason(),
    next_fire := undefined | integer(),
    schedule_error := undefined | reason(),
    running := undefined | #{started_at := integer(), trigger := emqx_guard_outcome:trigger()},
    catchup := undefined | #{instant := integer()},
    last_fired := undefined | integer(),
    last_run := undefined | outcome(),
    last_skip := undefined | outcome(),
    cluster_run := undefined | outcome(),
    counts := #{ok := non_neg_integer(), failed := non_neg_integer(), skipped := non_neg_integer()}
}.

%% @doc Why this EMQX cannot run backups at all (it has no data export: logged, and the alarm
%% says so), or `undefined' when it can.
-spec unsupported() -> undefined | reason().
unsupported() ->
    case emqx_guard_emqx:export_supported() of
        true ->
            undefined;
        false ->
            Why = {backups_cannot_run, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}},
            ?LOG_WARNING(#{msg => emqx_guard_export_unsupported, reason => emqx_guard_outcome:format_error(Why)}),
            emqx_guard_alarm:unsupported(Why),
            Why
    end.

%% @doc What the scheduler knows: settings, next fire, running run, last run, counts, and the
%% newest backup result in the cluster (`cluster_run').
-spec status(view()) -> status().
status(View = #{saved := Saved}) ->
    #{
        now => maps:get(now, View),
        settings => maps:get(settings, View),
        supported => maps:get(unsupported, View) =:= undefined,
        unsupported_reason => maps:get(unsupported, View),
        next_fire => maps:get(next_fire, View),
        schedule_error => maps:get(schedule_error, View),
        running =>
            case maps:get(run, View) of
                undefined -> undefined;
                #{started_at := S, trigger := T} -> #{started_at => S, trigger => T}
            end,
        catchup =>
            case maps:get(catchup, View) of
                undefined -> undefined;
                {_, _, Instant} -> #{instant => Instant}
            end,
        last_fired => maps:get(last_fired, Saved),
        last_run => maps:get(last_run, Saved),
        last_skip => maps:get(last_skip, View),
        cluster_run => emqx_guard_run_state:newest(Saved),
        counts => maps:get(counts, Saved)
    }.

%% @doc `ok', or why backups are not healthy: this EMQX cannot export, the schedule cannot be
%% computed, or the cluster's newest backup (made here or on another node) failed.
-spec health(view()) -> ok | {error, reason()}.
health(#{unsupported := Why}) when Why =/= undefined ->
    {error, Why};
health(#{schedule_error := Why}) when Why =/= undefined ->
    {error, Why};
health(#{saved := Saved}) ->
    case emqx_guard_run_state:newest(Saved) of
        #{result := failed, error := Error} = Newest ->
            {error, {last_backup_failed, #{node => maps:get(node, Newest, node()), error => Error}}};
        _ ->
            ok
    end.

%% @doc Whether this node can export scheduled backups, as another node reads it
%% (`emqx_guard_election:why_not()'): lines, whatever version that node runs.
-spec exporter(view()) -> ok | {error, emqx_guard_election:why_not()}.
exporter(#{unsupported := Why}) when Why =/= undefined ->
    {error, {export_unsupported, emqx_guard_outcome:format_error(Why)}};
exporter(#{schedule_error := {schedule_error, Why}}) ->
    {error, {schedule_error, emqx_guard_outcome:format_error(Why)}};
exporter(_) ->
    ok.
