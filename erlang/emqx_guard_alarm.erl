%% @doc The EMQX alarm `emqx_guard_backup_failed' (the dashboard's Alarms page): what raises and
%% clears it. Alarms are per node and live in memory, so a node raises it again at start when
%% its recorded last run failed.
-module(emqx_guard_alarm).

-export([update/1, restore/1, unsupported/1]).

-define(RECOVERED, <<"emqx_guard: the last backup succeeded">>).

%% @doc After a run: a failed run raises the alarm with its error line, a good one clears it,
%% a skipped one changes nothing.
-spec update(emqx_guard_outcome:outcome()) -> ok.
update(#{result := ok}) ->
    emqx_guard_emqx:deactivate_alarm(?RECOVERED);
update(#{result := failed} = Outcome) ->
    raise(Outcome);
update(_) ->
    ok.

%% @doc At start: raises the alarm again when the recorded last run failed.
-spec restore(undefined | emqx_guard_outcome:outcome()) -> ok.
restore(#{result := failed} = LastRun) ->
    raise(LastRun);
restore(_) ->
    ok.

%% @doc This EMQX cannot export at all: the alarm says why.
-spec unsupported(binary()) -> ok.
unsupported(Why) ->
    emqx_guard_emqx:activate_alarm(#{reason => Why}, Why).

raise(#{error := Error} = Outcome) ->
    emqx_guard_emqx:activate_alarm(
        maps:with([started_at, trigger, error], Outcome), <<"emqx_guard: backup failed: ", Error/binary>>
    ).
