%% @doc The EMQX alarms (the dashboard's Alarms page): what raises and clears them.
%% `emqx_guard_backup_failed': the cluster's newest backup failed. Alarms are per node in EMQX,
%% so every node follows the newest backup result it knows in the cluster, its own or one another
%% node told about (`emqx_guard_scheduler', `emqx_guard_cluster_result'): a failure raises the
%% alarm on every node (naming the node whose backup failed when it is another one), the next good
%% backup on any node clears it on every node. `emqx_guard_offsite_failed': this node's last
%% off-site job failed (`emqx_guard_offsite_alerts' raises and clears it; turning off-site copies
%% off clears it). Alarms live in memory, so a node restores them at start from what it knows
%% (`restore/1', and the off-site alerts from the off-site queue's own state). EMQX does not
%% update an alarm that is already active, so one active with other details or message is
%% cleared and raised again (`activate/3'); one with the same details and message is left as it
%% is (its history does not churn). EMQX is called through the door (`emqx_guard_emqx').
-module(emqx_guard_alarm).

-export([update/1, restore/1, unsupported/1, restore_failed/2, offsite_failed/2, offsite_cleared/1]).

-define(BACKUP, emqx_guard_backup_failed).

-define(RECOVERED, <<"emqx_guard: the last backup succeeded">>).
-define(OFFSITE, emqx_guard_offsite_failed).
-define(OFFSITE_RECOVERED, <<"emqx_guard: the last off-site copy succeeded">>).
-define(OFFSITE_OFF, <<"emqx_guard: off-site copies were turned off">>).

%% @doc After a backup, here or on another node (its `emqx_guard_outcome:summary/1'): a failed one
%% raises the alarm with its error line, a good one clears it, a skipped run changes nothing (the
%% node that exported the fire tells its result).
-spec update(emqx_guard_outcome:outcome()) -> ok.
update(#{result := ok}) ->
    emqx_guard_emqx:deactivate_alarm(?BACKUP, ?RECOVERED);
update(#{result := failed} = Outcome) ->
    raise(Outcome);
update(_) ->
    ok.

%% @doc At start, from the newest backup result known (this node's last run, or another node's
%% result): raises the backup alarm again when it failed, clears it when it is good (it may still
%% be active from before the plugin stopped). The off-site alarm is restored by the off-site queue
%% from its own state.
-spec restore(undefined | emqx_guard_outcome:outcome()) -> ok.
restore(#{result := failed} = LastRun) ->
    raise(LastRun);
restore(#{result := ok}) ->
    emqx_guard_emqx:deactivate_alarm(?BACKUP, ?RECOVERED);
restore(_) ->
    ok.

%% @doc This EMQX cannot export at all: the alarm says why (Why's line).
-spec unsupported(term()) -> ok.
unsupported(Why) ->
    Line = emqx_guard_outcome:format_error(Why),
    activate(?BACKUP, #{reason => Line}, Line).

raise(#{error := Error} = Outcome) ->
    On =
        case maps:get(node, Outcome, node()) of
            Here when Here =:= node() -> <<>>;
            Other -> <<" on ", (atom_to_binary(Other, utf8))/binary>>
        end,
    activate(
        ?BACKUP,
        maps:with([started_at, trigger, error, node], Outcome), <<"emqx_guard: backup failed", On/binary, ": ", Error/binary>>
    ).

%% @doc A restore failed (`emqx_guard_restore') with Error (its line) after the safety backup
%% was taken: raises the backup alarm, `emqx_guard_backup_failed', with Details (the file, the
%% safety backup, the step). The next good backup clears it, as it clears a failed backup's.
-spec restore_failed(binary(), map()) -> ok.
restore_failed(Error, Details) ->
    activate(?BACKUP, Details, <<"emqx_guard: restore failed: ", Error/binary>>).

%% @doc The last off-site job failed with Error (one line): raises `emqx_guard_offsite_failed'.
-spec offsite_failed(binary(), map()) -> ok.
offsite_failed(Error, Details) ->
    activate(?OFFSITE, Details, <<"emqx_guard: off-site copy failed: ", Error/binary>>).

%% @doc Off-site copies work again (`recovered'), or were turned off (`turned_off'): clears
%% `emqx_guard_offsite_failed'.
-spec offsite_cleared(recovered | turned_off) -> ok.
offsite_cleared(recovered) ->
    emqx_guard_emqx:deactivate_alarm(?OFFSITE, ?OFFSITE_RECOVERED);
offsite_cleared(turned_off) ->
    emqx_guard_emqx:deactivate_alarm(?OFFSITE, ?OFFSITE_OFF).

%% Raises the alarm Name; one active with other details or message is replaced (module doc).
activate(Name, Details, Message) ->
    case emqx_guard_emqx:activate_alarm(Name, Details, Message) of
        already_active ->
            case active(Name) of
                {ok, #{details := Details, message := Message}} ->
                    ok;
                _ ->
                    ok = emqx_guard_emqx:deactivate_alarm(Name, <<"replaced by a newer failure">>),
                    _ = emqx_guard_emqx:activate_alarm(Name, Details, Message),
                    ok
            end;
        _ ->
            ok
    end.

active(Name) ->
    case emqx_guard_emqx:active_alarms() of
        {ok, Alarms} ->
            case [A || #{name := N} = A <- Alarms, N =:= Name] of
                [Alarm | _] -> {ok, Alarm};
                [] -> not_found
            end;
        unavailable ->
            unknown
    end.
