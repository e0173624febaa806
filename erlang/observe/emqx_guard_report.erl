%% @doc The facts behind `guard backup_status', `backup_list' and `backup_list --remote', gathered
%% once as documents: maps with binary keys and JSON values (`emqx_guard_json:encode/1' writes
%% them as they are). The command prints them as text (`emqx_guard_status_cli') or, with
%% `--json', as JSON; the dashboard's plugin API can serve the same documents. The keys are
%% stable (documented in the README): a key is never renamed or given another meaning; a new
%% fact is a new key.
%%
%% Conventions: an instant is two keys, `<key>' (ISO 8601 with the offset of the schedule's zone,
%% `backup_timezone') and `<key>_ms' (Unix milliseconds); a size is in bytes, a duration in
%% milliseconds (`*_ms'); what is not known is `null'; a reason is its line
%% (`emqx_guard_outcome:format_error/1').
-module(emqx_guard_report).

-export([status/0, backups/0, backups_why/0, remote_backups/0, remote_backups/1, remote_backups_why/1, remote_plan/2,
         notifications/0, outcome/1, instant/3]).

-type doc() :: #{binary() => term()}.
-export_type([doc/0]).

%% How recently a file that does not verify must have been written to count as the one a running
%% backup is still writing.
-define(WRITING_WINDOW_MS, 60000).
%% A remote listing: the NIF bounds every request; this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).

%% @doc `guard backup_status': `node'; `schedule' (`cron', `description', `zone' as set,
%% `zone_name' its IANA name, `keep' as set, `keep_policy' and `remote_keep_policy' as retention
%% reads them, `pins', `catchup' as set and `catchup_s'); `next_fire' (and
%% `next_fire_error', why there is none); `catchup' (a missed run about to start); `running' (the
%% run going now: `started_at', `trigger'); `offsite' (`null' while off: `destination',
%% `encrypted', `queue', `newest_upload', `last_error', `retention'); `last_run'; `leftovers'
%% (what interrupted exports left, shown once); `last_restore' (`emqx_guard_restore_state', or
%% null); `runs' (`ok', `failed', `skipped');
%% `notifications' (each configured channel's last delivery); `last_skip' and `cluster'
%% (`emqx_guard_cluster_view:facts/1'); `healthy' and `health_error' (`null' while healthy): the
%% verdict of the plugin's health check itself (`emqx_guard_scheduler:health/0', what
%% `emqx_guard_app:on_health_check/1' tells EMQX), never a second copy of its rule.
-spec status() -> doc().
status() ->
    Status = emqx_guard_scheduler:status(),
    Health = emqx_guard_scheduler:health(),
    #{settings := S = #{backup_cron := Cron, backup_timezone := Zone}} = Status,
    #{ok := Ok, failed := Failed, skipped := Skipped} = maps:get(counts, Status),
    lists:foldl(fun maps:merge/2, emqx_guard_cluster_view:facts(Status), [next_fire(Status, Zone), #{
        <<"node">> => node(),
        <<"schedule">> => #{
            <<"cron">> => Cron,
            <<"description">> => ok_or_null(emqx_guard_cron:describe(Cron)),
            <<"zone">> => Zone,
            <<"zone_name">> => ok_or(emqx_guard_cron:zone_name(Zone), Zone),
            <<"keep">> => maps:get(backup_keep, S),
            <<"keep_policy">> => emqx_guard_retention:text(maps:get(backup_keep, S)),
            <<"remote_keep_policy">> => emqx_guard_retention:remote_text(S),
            <<"pins">> => maps:get(backup_pins, S, []),
            <<"catchup">> => emqx_guard_render:duration_s(maps:get(backup_catchup, S)),
            <<"catchup_s">> => maps:get(backup_catchup, S)
        },
        <<"catchup">> =>
            case maps:get(catchup, Status) of
                #{instant := Missed} -> instant(<<"instant">>, Missed, Zone);
                undefined -> null
            end,
        <<"running">> =>
            case maps:get(running, Status) of
                #{started_at := Started, trigger := Trigger} -> (instant(<<"started_at">>, Started, Zone))#{<<"trigger">> => Trigger};
                undefined -> null
            end,
        <<"offsite">> => offsite(S),
        <<"last_run">> => run(maps:get(last_run, Status), Zone),
        <<"leftovers">> => emqx_guard_leftovers:take_note(Zone),
        <<"last_restore">> => last_restore(Zone),
        <<"runs">> => #{<<"ok">> => Ok, <<"failed">> => Failed, <<"skipped">> => Skipped},
        <<"notifications">> => notifications(),
        <<"healthy">> => Health =:= ok,
        <<"health_error">> =>
            case Health of
                ok -> null;
                {error, Why} -> emqx_guard_outcome:format_error(Why)
            end
    }]).

%% The last restore on this node (`emqx_guard_restore_state'): when, which file, by which node,
%% its result, the step that failed and its error, the safety backup taken before it.
last_restore(Zone) ->
    case emqx_guard_restore_state:last() of
        #{started_at := At} = Last ->
            maps:merge(instant(<<"started_at">>, At, Zone), maps:from_list(
                [{atom_to_binary(K), emqx_guard_restore:jsonable(V)} || {K, V} <- maps:to_list(maps:remove(started_at, Last))]));
        _ ->
            null
    end.

next_fire(#{supported := false, unsupported_reason := Why}, _Zone) ->
    no_fire(Why);
next_fire(#{schedule_error := Why}, _Zone) when Why =/= undefined ->
    no_fire(Why);
next_fire(#{next_fire := Next}, Zone) when is_integer(Next) ->
    (instant(<<"next_fire">>, Next, Zone))#{<<"next_fire_error">> => null};
next_fire(_, _Zone) ->
    no_fire(undefined).

no_fire(Why) ->
    Error =
        case Why of
            undefined -> null;
            _ -> emqx_guard_outcome:format_error(Why)
        end,
    #{<<"next_fire">> => null, <<"next_fire_ms">> => null, <<"next_fire_error">> => Error}.

%% @doc A run's outcome as `last_run' shows it (in the schedule's zone): `started_at',
%% `duration_ms', `result', `trigger', `file', `path', `size', `sha256', `error', `warnings'.
-spec outcome(map()) -> doc().
outcome(Run) ->
    run(Run, maps:get(backup_timezone, emqx_guard_settings:get())).

%% A run's outcome (`emqx_guard_outcome'): when, how long, how it went, what it made.
run(undefined, _Zone) ->
    null;
run(Run = #{started_at := Started, duration_ms := Duration, result := Result}, Zone) ->
    (instant(<<"started_at">>, Started, Zone))#{
        <<"duration_ms">> => Duration,
        <<"result">> => Result,
        <<"trigger">> => maps:get(trigger, Run, scheduled),
        <<"file">> => maps:get(file, Run, null),
        <<"path">> => maps:get(path, Run, null),
        <<"size">> => maps:get(size, Run, null),
        <<"sha256">> => maps:get(sha256, Run, null),
        <<"error">> => maps:get(error, Run, null),
        <<"warnings">> => maps:get(warnings, Run, [])
    }.

%% The off-site copies: where, and what the queue does and did (`emqx_guard_offsite_queue:status/0';
%% `queue' is `null' when it is not running).
offsite(S = #{backup_timezone := Zone}) ->
    case emqx_guard_offsite_config:to_nif(S) of
        off ->
            null;
        {ok, Config} ->
            Where = #{<<"destination">> => emqx_guard_offsite:where(Config), <<"encrypted">> => maps:get(backup_remote_recipient, S) =/= <<>>},
            case emqx_guard_offsite_queue:status() of
                undefined -> Where#{<<"queue">> => null, <<"newest_upload">> => null, <<"last_error">> => null, <<"retention">> => null};
                Q -> maps:merge(Where, queue(Q, Zone))
            end
    end.

queue(#{running := Running, waiting := Waiting, retry_at := RetryAt, state := State}, Zone) ->
    #{
        <<"queue">> => maps:merge(
            #{
                <<"running">> =>
                    case Running of
                        undefined -> null;
                        #{kind := Kind, file := File, started_at := At} ->
                            (instant(<<"started_at">>, At, Zone))#{<<"kind">> => Kind, <<"file">> => null_if_undefined(File)}
                    end,
                <<"waiting">> => Waiting
            },
            instant(<<"retry_at">>, RetryAt, Zone)
        ),
        <<"newest_upload">> =>
            case maps:get(last_upload, State) of
                undefined -> null;
                U = #{at := At} -> (instant(<<"at">>, At, Zone))#{
                    <<"file">> => maps:get(file, U), <<"name">> => maps:get(name, U), <<"bytes">> => maps:get(bytes, U),
                    <<"duration_ms">> => maps:get(duration_ms, U), <<"reused">> => maps:get(reused, U)}
            end,
        <<"last_error">> =>
            case maps:get(last_error, State) of
                undefined -> null;
                #{at := At, error := E} -> (instant(<<"at">>, At, Zone))#{<<"error">> => E, <<"failing">> => maps:get(failing, State)}
            end,
        <<"retention">> =>
            case maps:get(retention, State) of
                #{paused := Paused} = R ->
                    #{<<"paused">> => maps:from_list([{atom_to_binary(K), V} || {K, V} <- maps:to_list(Paused)]),
                      <<"line">> => emqx_guard_offsite:retention_line(R)};
                _ -> null
            end
    }.

%% @doc Each configured notification channel's last delivery (`emqx_guard_notify:status/0'):
%% `channel' and `last' (`null' when nothing was sent yet: `event', `state' (`sending' |
%% `retrying' | `sent' | `failed'), `attempts', `at' in UTC, `answer' or `error').
-spec notifications() -> [doc()].
notifications() ->
    S = emqx_guard_notify:status(),
    [#{<<"channel">> => K, <<"last">> => delivery(maps:get(K, S))} || K <- maps:get(enabled, S)].

delivery(undefined) ->
    null;
delivery(D = #{event := Event, state := State, attempts := N, at := At}) ->
    (instant(<<"at">>, At, <<"UTC">>))#{<<"event">> => Event, <<"state">> => State, <<"attempts">> => N,
                                       <<"answer">> => maps:get(answer, D, null), <<"error">> => maps:get(error, D, null)}.

%% @doc `guard backup_list': `dir' and `backups', newest first, each with `name', `path', `size',
%% `mtime', `state' (`verified', `not_verified', or `being_written' by the running backup),
%% `error' (why it does not verify, or why no check reached a verdict), `checked_at' (when
%% the verdict was reached) and `pinned' (`guard backup_pin': retention never deletes it).
%% `{error, Reason}' when the directory cannot be listed.
-spec backups() -> {ok, doc()} | {error, emqx_guard_backups:list_error()}.
backups() ->
    Dir = emqx_guard_emqx:backup_dir(),
    #{backup_timezone := Zone, backup_pins := Pins} = emqx_guard_settings:get(),
    case emqx_guard_backups:list(Dir) of
        {ok, Backups} ->
            Running = maps:get(running, emqx_guard_scheduler:status()),
            {ok, #{<<"dir">> => unicode:characters_to_binary(Dir),
                   <<"backups">> => [(backup(B, Running, Zone))#{<<"pinned">> => lists:member(N, Pins),
                                                                  <<"plugins">> => filelib:is_regular(emqx_guard_companion:path(P))}
                                     || B = #{name := N, path := P} <- Backups]}};
        {error, _} = Error ->
            Error
    end.

%% @doc `backups/0' with what retention does with each backup (`guard backup_list --why'):
%% `why', the rule(s) of `backup_keep' that keep it or why it goes, from retention's plan
%% (`emqx_guard_backups:plan/2', nothing deleted; `null' for a backup newer than the plan), and
%% `keep_policy'. May read backups that have no verification record yet.
-spec backups_why() -> {ok, doc()} | {error, term()}.
backups_why() ->
    S = emqx_guard_settings:get(),
    case {backups(), emqx_guard_backups:plan(emqx_guard_emqx:backup_dir(), emqx_guard_retention:local(S))} of
        {{ok, Doc = #{<<"backups">> := Backups}}, {ok, #{plan := Plan}}} ->
            Why = maps:from_list([{N, W} || #{name := N, why := W} <- Plan]),
            {ok, Doc#{<<"keep_policy">> => emqx_guard_retention:text(maps:get(backup_keep, S)),
                      <<"backups">> => [B#{<<"why">> => maps:get(N, Why, null)} || B = #{<<"name">> := N} <- Backups]}};
        {{error, _} = Error, _} ->
            Error;
        {_, {error, _} = Error} ->
            Error
    end.

backup(B = #{name := Name, path := Path, size := Size, mtime := MTime}, Running, Zone) ->
    {State, Error} =
        case maps:get(verified, B) of
            ok -> {verified, null};
            {error, Why} -> {written_or_not(Running, MTime), emqx_guard_outcome:format_error(Why)}
        end,
    lists:foldl(fun maps:merge/2, #{<<"name">> => Name, <<"path">> => Path, <<"size">> => Size, <<"state">> => State,
                                    <<"error">> => Error}, [
        instant(<<"mtime">>, MTime, Zone),
        instant(<<"checked_at">>, maps:get(checked_at, B, undefined), Zone)
    ]).

%% While a backup runs, an export that does not verify yet and was written to within the last
%% minute is the one EMQX is still writing: not a fault.
written_or_not(#{started_at := _}, MTime) ->
    case MTime >= os:system_time(millisecond) - ?WRITING_WINDOW_MS of
        true -> being_written;
        false -> not_verified
    end;
written_or_not(undefined, _MTime) ->
    not_verified.

%% @doc `guard backup_list --remote': `destination' and `backups', newest first, each with
%% `name' (the object), `export_name', `size' (of the object), `mtime' and `encrypted'.
%% `{error, Reason}' without a destination or when the bucket cannot be listed.
-spec remote_backups() -> {ok, doc()} | {error, term()}.
remote_backups() ->
    remote_backups(?AWAIT_MS).

%% @doc `remote_backups/0' waiting at most WaitMs for the listing (the plugin API has seconds).
-spec remote_backups(pos_integer()) -> {ok, doc()} | {error, term()}.
remote_backups(WaitMs) ->
    S = #{backup_timezone := Zone} = emqx_guard_settings:get(),
    case emqx_guard_offsite_config:to_nif(S) of
        off ->
            {error, {no_destination, off}};
        {ok, Config} ->
            Listed =
                case emqx_guard_core:offsite_list_async(Config, #{}) of
                    {ok, Job} -> emqx_guard_core:await(Job, WaitMs);
                    {error, _} = Error -> Error
                end,
            case Listed of
                {ok, Remote} ->
                    {ok, #{<<"destination">> => emqx_guard_offsite:where(Config), <<"backups">> => [remote(R, Zone) || R <- Remote]}};
                {error, _} = Failed ->
                    Failed
            end
    end.

%% @doc `remote_backups/1' with what off-site retention does with each object, as the off-site
%% half of `guard backup_prune --dry-run' says it (`remote_plan/2'): `remote_keep_policy',
%% `retention_paused' (why nothing is deleted off-site now, or `null'), and for each backup also
%% `keep', `why' (the rule(s) that keep it, or why it goes) and `pinned' (`guard backup_pin').
-spec remote_backups_why(pos_integer()) -> {ok, doc()} | {error, term()}.
remote_backups_why(WaitMs) ->
    S = #{backup_timezone := Zone, backup_pins := Pins} = emqx_guard_settings:get(),
    case remote_plan(S, WaitMs) of
        {ok, #{destination := Where, plan := Plan, paused := Paused}} ->
            {ok, #{<<"destination">> => Where, <<"remote_keep_policy">> => emqx_guard_retention:remote_text(S),
                   <<"retention_paused">> => case Paused of undefined -> null; _ -> emqx_guard_offsite:retention_line(Paused) end,
                   <<"backups">> => [(remote(R, Zone))#{<<"keep">> => Keep, <<"why">> => Why, <<"pinned">> => lists:member(E, Pins)}
                                     || R = #{export_name := E, keep := Keep, why := Why} <- Plan]}};
        {error, _} = Error ->
            Error
    end.

%% @doc Off-site retention's plan under Settings, as `guard backup_prune --dry-run' prints it: the
%% dry run of the prune the off-site queue makes (`emqx_guard_core:offsite_prune_async/4' with
%% `emqx_guard_retention:remote/1''s rules; nothing deleted): `destination', `plan' (every object,
%% newest first, with `keep' and `why'), `deleted' (what it would delete), and `paused' (remote
%% retention's guard, `emqx_guard_offsite:retention/4', holds those deletions back) or
%% `undefined'. WaitMs bounds the whole; `{error, {no_destination, off}}' without a destination.
-spec remote_plan(emqx_guard_settings:settings(), pos_integer()) ->
    {ok, #{destination := binary(), plan := [map()], deleted := [map()], paused := undefined | map()}} | {error, term()}.
remote_plan(S, WaitMs) ->
    case emqx_guard_offsite_config:to_nif(S) of
        off ->
            {error, {no_destination, off}};
        {ok, Config} ->
            Planned =
                case emqx_guard_core:offsite_prune_async(Config, emqx_guard_retention:remote(S), true, #{}) of
                    {ok, Job} -> emqx_guard_core:await(Job, WaitMs);
                    {error, _} = Error -> Error
                end,
            case Planned of
                {ok, #{plan := Plan, deleted := Doomed, kept := Kept}} ->
                    #{own := Own, confirmed := Confirmed} = emqx_guard_offsite_queue:retention_guard(),
                    There = [E || #{export_name := E} <- Kept ++ Doomed],
                    Count = emqx_guard_retention:count(emqx_guard_retention:remote_text(S)),
                    Paused =
                        case {Doomed, emqx_guard_offsite:retention(There, Own, Count, Confirmed)} of
                            {[_ | _], P = #{paused := _}} -> P;
                            _ -> undefined
                        end,
                    {ok, #{destination => emqx_guard_offsite:where(Config), plan => Plan, deleted => Doomed, paused => Paused}};
                {error, _} = Failed ->
                    Failed
            end
    end.

remote(#{name := Name, export_name := Export, size := Size, mtime := MTime, encrypted := Encrypted}, Zone) ->
    (instant(<<"mtime">>, MTime, Zone))#{<<"name">> => Name, <<"export_name">> => Export, <<"size">> => Size,
                                        <<"encrypted">> => Encrypted}.

%% @doc An instant as two keys: Key, ISO 8601 with Zone's offset at that instant, and `<Key>_ms',
%% Unix milliseconds; both `null' for `undefined'.
-spec instant(binary(), integer() | undefined, binary()) -> doc().
instant(Key, undefined, _Zone) ->
    #{Key => null, <<Key/binary, "_ms">> => null};
instant(Key, Ms, Zone) ->
    Offset =
        case emqx_guard_core:utc_offset(Zone, Ms) of
            {ok, O} -> O;
            {error, _} -> 0
        end,
    #{Key => emqx_guard_render:iso8601(Ms, Offset), <<Key/binary, "_ms">> => Ms}.

%%--------------------------------------------------------------------------------------------

ok_or({ok, V}, _Default) -> V;
ok_or({error, _}, Default) -> Default.

ok_or_null(Result) -> ok_or(Result, null).

null_if_undefined(undefined) -> null;
null_if_undefined(V) -> V.
