%% @doc What the off-site queue (`emqx_guard_offsite_queue') keeps across restarts, in
%% `<data_dir>/emqx_guard/offsite.eterm' (`{emqx_guard_offsite, 1, Map}'):
%% <ul>
%% <li>`pending': the backups still to upload (`#{file, path}', oldest first): the one in flight
%%     and the one waiting. A node that restarts resumes them.</li>
%% <li>`own': the export names this node uploaded (in this life) that were still in the bucket
%%     when it last looked, and `since', when this record began. A node whose
%%     `data/emqx_guard/' was lost starts a new life with an empty record: remote retention then
%%     leaves the bucket's older backups alone until this node has a history of its own
%%     (`emqx_guard_offsite:retention/4').</li>
%% <li>`confirmed_for': the destination (`emqx_guard_offsite:destination/1') for which the
%%     operator let remote retention apply to every backup (`guard backup_remote_prune
%%     --confirm'), or `undefined'.</li>
%% <li>`failing': the last job failed (the alarm is raised, `offsite_failed' was sent, and
%%     `offsite_ok' follows the next success); `last_upload' (the upload of the newest backup
%%     uploaded), `last_error', `last_job' and `retention' (`ok' or why it is paused): what
%%     `guard backup_status' shows.</li>
%% </ul>
%% A missing file is a fresh record (a new life); a damaged file or field gives the fresh value
%% for what is damaged, and a warning in the log, never a crash. A damaged record is a new life
%% too, which only makes remote retention more careful. What a job changes of the record is
%% `uploaded/2', `job_ended/4' and `pending/2'.
-module(emqx_guard_offsite_state).

-import(emqx_guard_value, [is_text/1, is_texts/1, is_instant/1]).

-include_lib("kernel/include/logger.hrl").

-export([fresh/1, load/1, save/1, path/0]).
%% What a job changes.
-export([pending/2, uploaded/2, job_ended/4]).

-export_type([state/0, backup/0, upload/0]).

-type backup() :: #{file := binary(), path := binary()}.
-type upload() :: #{
    at := integer(),
    file := binary(),
    name := binary(),
    bytes := non_neg_integer(),
    duration_ms := non_neg_integer(),
    reused := boolean()
}.
-type state() :: #{
    since := integer(),
    pending := [backup()],
    own := [binary()],
    confirmed_for := undefined | binary(),
    failing := boolean(),
    last_upload := undefined | upload(),
    last_error := undefined | #{at := integer(), error := binary()},
    last_job := undefined | #{at := integer(), result := ok | failed, duration_ms := non_neg_integer()},
    retention := undefined | emqx_guard_offsite:retention()
}.

%% The state file's format (`emqx_guard_store'): a new key is no new format.
-define(FORMAT, #{tag => emqx_guard_offsite, version => 1}).

%% @doc A fresh record: a new life that began at Now (Unix ms), nothing pending.
-spec fresh(integer()) -> state().
fresh(Now) ->
    #{
        since => Now,
        pending => [],
        own => [],
        confirmed_for => undefined,
        failing => false,
        last_upload => undefined,
        last_error => undefined,
        last_job => undefined,
        retention => undefined
    }.

%% @doc State with Backups as `pending', oldest first (export names sort by time).
-spec pending([backup()], state()) -> state().
pending(Backups, State) ->
    State#{pending := lists:usort(fun(#{file := A}, #{file := B}) -> A =< B end, Backups)}.

%% @doc An upload a job reported: its export is this node's in the bucket, and `last_upload'
%% the upload of the newest backup (export names sort by time), not of an older one a job filled
%% in after it.
-spec uploaded(upload(), state()) -> state().
uploaded(Upload = #{file := File}, State = #{own := Own, last_upload := Last}) ->
    Newest =
        case Last of
            #{file := Known} when Known > File -> Last;
            _ -> Upload
        end,
    State#{own := lists:usort([File | Own]), last_upload := Newest}.

%% @doc A job that started at Started ended after DurationMs with Result
%% (`emqx_guard_offsite:result()'): what it found of this node's backups in the bucket and of
%% remote retention, and the `last_job'.
-spec job_ended(map(), integer(), non_neg_integer(), state()) -> state().
job_ended(Result, Started, DurationMs, State) ->
    State#{
        own := maps:get(own, Result, maps:get(own, State)),
        retention := maps:get(retention, Result, maps:get(retention, State)),
        last_job := #{at => Started, result => maps:get(result, Result), duration_ms => DurationMs}
    }.

%% @doc The state file.
-spec path() -> file:filename().
path() ->
    emqx_guard_store:path("offsite.eterm").

%% @doc Stores the state atomically.
-spec save(state()) -> ok | {error, emqx_guard_store:error()}.
save(State) ->
    emqx_guard_store:save(path(), ?FORMAT, State).

%% @doc The stored state (see the module doc); a fresh one begun at Now when there is none.
-spec load(integer()) -> state().
load(Now) ->
    Path = path(),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Stored} when is_map(Stored) ->
            checked(Path, Stored, fresh(Now));
        none ->
            fresh(Now);
        %% a newer plugin's file: said by the store
        newer ->
            fresh(Now);
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_offsite_state_damaged, path => Path, content => Other, action => starting_fresh}),
            fresh(Now)
    end.

checked(Path, Stored, Fresh) ->
    maps:map(
        fun(Key, Default) ->
            case maps:find(Key, Stored) of
                error ->
                    Default;
                {ok, Value} ->
                    case valid(Key, Value) of
                        true ->
                            Value;
                        false ->
                            ?LOG_WARNING(#{
                                msg => emqx_guard_offsite_state_damaged, path => Path, key => Key, content => Value, action => dropped
                            }),
                            Default
                    end
            end
        end,
        Fresh
    ).

valid(since, V) -> is_instant(V);
valid(pending, V) -> is_list(V) andalso lists:all(fun is_backup/1, V);
valid(own, V) -> is_texts(V);
valid(confirmed_for, V) -> V =:= undefined orelse is_text(V);
valid(failing, V) -> is_boolean(V);
valid(last_upload, undefined) -> true;
valid(last_upload, #{at := At, file := F, name := N, bytes := B, duration_ms := D, reused := R}) ->
    is_instant(At) andalso is_text(F) andalso is_text(N) andalso is_count(B) andalso is_count(D) andalso is_boolean(R);
valid(last_error, undefined) -> true;
valid(last_error, #{at := At, error := E}) -> is_instant(At) andalso is_text(E);
valid(last_job, undefined) -> true;
valid(last_job, #{at := At, result := R, duration_ms := D}) -> is_instant(At) andalso (R =:= ok orelse R =:= failed) andalso is_count(D);
valid(retention, undefined) -> true;
valid(retention, ok) -> true;
valid(retention, #{paused := #{foreign := F, own := O, keep := K}}) -> is_count(F) andalso is_count(O) andalso is_count(K);
valid(_, _) -> false.

is_backup(#{file := F, path := P}) -> is_text(F) andalso is_text(P);
is_backup(_) -> false.

is_count(N) -> is_integer(N) andalso N >= 0.

