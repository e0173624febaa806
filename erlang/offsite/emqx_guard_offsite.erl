%% @doc ONE off-site job, top to bottom: the off-site copies of this node's verified backups on
%% S3-compatible storage. `emqx_guard_offsite_queue' runs one job at a time, in a process of
%% its own, after the backup run has finished; `job/2' is the whole job:
%% <ol>
%% <li><b>upload</b> the backup the job is for, if it is still on disk
%%     (`emqx_guard_core:offsite_upload_async/3', a background job: hashed, uploaded with
%%     per-request checksums, age-encrypted when a recipient is set, then checked with HEAD; an
%%     object of that key whose recorded SHA-256 and size match is not sent again and comes back
%%     `reused'); a failed upload is tried again after each wait of the `offsite_retry_ms'
%%     application environment (default 5 s, then 30 s) while its reason can pass by waiting
%%     (`emqx_guard_retry''s rule for `upload': not `auth', `not_found', `tls', bad
%%     settings);</li>
%% <li><b>fill in</b>: every local backup among the newest `keep' (the largest count of the
%%     off-site policy, `emqx_guard_retention:count/1') that verify and has no remote object is
%%     uploaded too (oldest first), so a copy that failed or was superseded in the queue is made
%%     now;</li>
%% <li><b>remote retention</b>, only when every upload passed, and only as `retention/4'
%%     allows: it never deletes a backup this node did not upload (another node's, or its own
%%     from before its `data/emqx_guard/' was lost) until this node has uploaded `keep' backups
%%     of its own that are still there, unless the operator confirmed it for this destination
%%     (`guard backup_remote_prune --confirm'). Then `offsite_prune_async/4' applies the
%%     off-site rules (`retention': `backup_remote_keep', or `backup_keep' when it is `local';
%%     the pins; the decision the local prune makes) to the remote backups (only export names
%%     directly under the prefix count; nothing else in the bucket is touched).</li>
%% </ol>
%% Each upload is reported at once (`Report({uploaded, Upload})') so the queue records it even if
%% the job dies later. The job never touches a local backup. It returns `result()': `ok' or
%% `failed' with one line (`emqx_guard_outcome:format_error/1'), what it uploaded and pruned,
%% the export names this node now has in the bucket (`own') and whether retention ran or why it
%% is paused. The queue's job process is `run/3' (with `request/4'): a crash there is a failed
%% job (`crashed/2'), its reason's tag only logged.
-module(emqx_guard_offsite).

-include_lib("kernel/include/logger.hrl").

-export([job/2, check/1, retention/4, retention_line/1, destination/1, where/1, summary/1]).
%% The job process of `emqx_guard_offsite_queue'.
-export([request/4, run/3, crashed/2, tag/1, confirmed/2]).

-export_type([request/0, result/0, retention/0]).

-type request() :: #{
    config := emqx_guard_nif:offsite_config(),
    keep := pos_integer(),
    %% the off-site rules (`emqx_guard_retention:remote/1'; default: `last=<keep>')
    retention => emqx_guard_retention:rules(),
    dir := file:filename_all(),
    io_limit := emqx_guard_backups:limit(),
    backup := undefined | emqx_guard_offsite_state:backup(),
    own := [binary()],
    confirmed := boolean()
}.
-type retention() :: ok | #{paused := #{foreign := non_neg_integer(), own := non_neg_integer(), keep := pos_integer()}}.
-type result() :: #{
    result := ok | failed,
    %% object names uploaded (or found there already, `reused') and pruned by this job
    uploaded := [binary()],
    pruned := [binary()],
    uploads => [emqx_guard_offsite_state:upload()],
    own => [binary()],
    retention => retention(),
    error => binary(),
    %% the backup whose upload failed (after its retries), when that failed the job
    failed_upload => binary()
}.

%% Waiting for one NIF job: the NIF bounds every request (timeout_ms, retries); this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).
-define(RETRY_MS, [5000, 30000]).

%% @doc The request of a job for Backup (`undefined': fill-in and retention only, or a look) to
%% Config's destination, under Settings, with State's record of this node's uploads.
-spec request(emqx_guard_nif:offsite_config(), emqx_guard_settings:settings(), undefined | emqx_guard_offsite_state:backup(),
    emqx_guard_offsite_state:state()) -> request().
request(Config, Settings, Backup, State = #{own := Own}) ->
    #{
        config => Config,
        keep => emqx_guard_retention:count(emqx_guard_retention:remote_text(Settings)),
        retention => emqx_guard_retention:remote(Settings),
        dir => emqx_guard_emqx:backup_dir(),
        io_limit => maps:get(backup_io_limit, Settings),
        backup => Backup,
        own => Own,
        confirmed => confirmed(Config, State)
    }.

%% @doc Whether the operator confirmed remote retention (`guard backup_remote_prune --confirm')
%% for Config's destination, as State records it.
-spec confirmed(emqx_guard_nif:offsite_config(), emqx_guard_offsite_state:state()) -> boolean().
confirmed(Config, #{confirmed_for := For}) ->
    For =:= destination(Config).

%% @doc The job process: a look at the bucket (`check', `check/1') or a job (`job/2'), each
%% upload reported to Server as `{offsite_progress, self(), Event}', the result sent as
%% `{offsite_done, self(), Result}'. A crash is a failed job (`crashed/2').
-spec run(pid(), backup | sync | check, request()) -> ok.
run(Server, Kind, Request) ->
    Report = fun(Event) -> Server ! {offsite_progress, self(), Event} end,
    Result =
        try
            case Kind of
                check -> check(Request);
                _ -> job(Request, Report)
            end
        catch
            Class:Reason ->
                ?LOG_ERROR(#{msg => emqx_guard_offsite_crashed, exception => Class, reason => tag(Reason)}),
                crashed(Class, Reason)
        end,
    Server ! {offsite_done, self(), Result},
    ok.

%% @doc The result of a job that crashed (or whose process died) with Class and Reason; only the
%% reason's tag is kept (its terms may hold the destination's credentials).
-spec crashed(error | exit | throw, term()) -> result().
crashed(Class, Reason) ->
    #{result => failed, uploaded => [], pruned => [],
      error => emqx_guard_outcome:format_error({offsite_crashed, #{class => Class, reason => tag(Reason)}})}.

%% @doc The tag of a reason (its first element), safe to log: the rest may hold credentials.
-spec tag(term()) -> term().
tag(Reason) when is_tuple(Reason), tuple_size(Reason) > 0 -> element(1, Reason);
tag(Reason) -> Reason.

%% @doc Runs one job (see the module doc). Report is called with `{uploaded, Upload}' after each
%% upload that passed.
-spec job(request(), fun(({uploaded, emqx_guard_offsite_state:upload()}) -> term())) -> result().
job(Request = #{config := Config, backup := Backup, own := Own0}, Report) ->
    Opts = job_opts(Request),
    Done =
        case first_upload(Config, Backup, Opts, Report) of
            {ok, First} -> fill_in(Request, Opts, Report, First);
            {error, Why} -> {failed, Why, [], Own0, undefined}
        end,
    Result =
        case Done of
            {ok, Uploads, Pruned, Own, Retention} ->
                #{result => ok, uploads => Uploads, pruned => Pruned, own => Own, retention => Retention};
            {failed, Why2, Uploads, Own, Retention} ->
                R0 = #{result => failed, uploads => Uploads, pruned => [], own => Own,
                       error => emqx_guard_outcome:format_error(Why2)},
                %% an upload given up after its retries is counted (`emqx_guard_counters')
                R = case Why2 of
                    {offsite_upload_failed, #{file := Failed}} -> R0#{failed_upload => Failed};
                    _ -> R0
                end,
                case Retention of
                    undefined -> R;
                    _ -> R#{retention => Retention}
                end
        end,
    Final = Result#{uploaded => [N || #{name := N} <- maps:get(uploads, Result)]},
    log(Backup, Final),
    Final.

%% @doc A look at the bucket that changes nothing: this node's backups still there and whether
%% remote retention would run (`retention/4'). The queue runs it when a node with no local
%% backup starts, or gets a new destination (a rebuilt node), so `guard backup_status' says at
%% once that the history in the bucket is kept.
-spec check(request()) ->
    #{result := checked, own := [binary()], retention := retention()} | #{result := check_failed, error := binary()}.
check(Request = #{config := Config, keep := Keep, own := Own0, confirmed := Confirmed}) ->
    case list(Config, job_opts(Request)) of
        {ok, Remote} ->
            There = [E || #{export_name := E} <- Remote],
            Own = own(Own0, [], There),
            #{result => checked, own => Own, retention => retention(There, Own, Keep, Confirmed)};
        {error, Why} ->
            #{result => check_failed, error => emqx_guard_outcome:format_error({offsite_list_failed, Why})}
    end.

%% The backup the job is for; nothing when it is gone (retention removed it meanwhile: the
%% fill-in copies what is still kept).
first_upload(_Config, undefined, _Opts, _Report) ->
    {ok, []};
first_upload(Config, #{file := File, path := Path}, Opts, Report) ->
    case filelib:is_regular(Path) of
        false ->
            ?LOG_INFO(#{msg => emqx_guard_offsite_backup_gone, file => File}),
            {ok, []};
        true ->
            case upload(Config, File, Path, Opts) of
                {ok, Upload} ->
                    Report({uploaded, Upload}),
                    {ok, [Upload]};
                {error, Why} ->
                    {error, {offsite_upload_failed, #{file => File, reason => Why}}}
            end
    end.

%% The missing recent backups, then retention.
fill_in(Request = #{config := Config, keep := Keep, dir := Dir, own := Own0}, Opts, Report, First) ->
    Done = [F || #{file := F} <- First],
    case list(Config, Opts) of
        {ok, Remote} ->
            There = [E || #{export_name := E} <- Remote],
            case missing(Dir, Keep, There ++ Done) of
                {ok, Missing} ->
                    case upload_all(Config, Missing, Opts, Report, First) of
                        {ok, Uploads} ->
                            prune(Request, Opts, Uploads, There);
                        {failed, Why, Uploads} ->
                            {failed, Why, Uploads, own(Own0, Uploads, There), undefined}
                    end;
                {error, Why} ->
                    {failed, Why, First, own(Own0, First, There), undefined}
            end;
        {error, Why} ->
            {failed, {offsite_list_failed, Why}, First, own(Own0, First, undefined), undefined}
    end.

%% This node's export names in the bucket: what it had there, plus what it uploaded now, less
%% what is no longer listed (deleted by someone, or another destination). Without a listing,
%% nothing is forgotten.
own(Own0, Uploads, There) ->
    New = [F || #{file := F} <- Uploads],
    Mine = lists:usort(Own0 ++ New),
    case There of
        undefined -> Mine;
        _ -> [N || N <- Mine, lists:member(N, There) orelse lists:member(N, New)]
    end.

upload_all(_Config, [], _Opts, _Report, Uploads) ->
    {ok, Uploads};
upload_all(Config, [#{path := Path, name := File} | Rest], Opts, Report, Uploads) ->
    case upload(Config, File, Path, Opts) of
        {ok, Upload} ->
            Report({uploaded, Upload}),
            upload_all(Config, Rest, Opts, Report, Uploads ++ [Upload]);
        {error, Why} ->
            {failed, {offsite_upload_failed, #{file => File, reason => Why}}, Uploads}
    end.

%% The local backups among the newest Keep that verify whose export has no remote object,
%% oldest first.
missing(Dir, Keep, There) ->
    case emqx_guard_backups:list(Dir) of
        {ok, Local} ->
            Recent = lists:sublist([B || B = #{verified := ok} <- Local], Keep),
            {ok, lists:reverse([B || B = #{name := N} <- Recent, not lists:member(N, There)])};
        {error, Why} ->
            {error, {offsite_local_list_failed, Why}}
    end.

prune(Request = #{config := Config, keep := Keep, own := Own0, confirmed := Confirmed}, Opts, Uploads, There0) ->
    There = lists:usort(There0 ++ [F || #{file := F} <- Uploads]),
    Own = own(Own0, Uploads, There),
    case retention(There, Own, Keep, Confirmed) of
        ok ->
            Done =
                case emqx_guard_core:offsite_prune_async(Config, maps:get(retention, Request, Keep), false, Opts) of
                    {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
                    {error, _} = Error -> Error
                end,
            case Done of
                {ok, #{deleted := Deleted, failed := Failed}} ->
                    Gone = [E || #{export_name := E} <- Deleted],
                    Own1 = Own -- Gone,
                    case Failed of
                        [] ->
                            {ok, Uploads, names(Deleted), Own1, ok};
                        [#{name := Name, error := Detail} | _] ->
                            {failed, {offsite_prune_failed, #{name => Name, detail => Detail}}, Uploads, Own1, ok}
                    end;
                {error, Why} ->
                    {failed, {offsite_prune_failed, Why}, Uploads, Own, ok}
            end;
        Paused ->
            ?LOG_INFO(#{msg => emqx_guard_offsite_retention_paused, reason => retention_line(Paused)}),
            {ok, Uploads, [], Own, Paused}
    end.

%% @doc Whether remote retention may run on a bucket holding these export names (There), of
%% which this node uploaded Own: yes (`ok') when every backup there is its own, when it has
%% uploaded Keep backups of its own that are still there, or when the operator confirmed it
%% (`guard backup_remote_prune --confirm'); else it is paused and the map says why.
-spec retention([binary()], [binary()], pos_integer(), boolean()) -> retention().
retention(There, Own, Keep, Confirmed) ->
    Mine = [N || N <- lists:usort(There), lists:member(N, Own)],
    Foreign = lists:usort(There) -- Mine,
    case Foreign =:= [] orelse length(Mine) >= Keep orelse Confirmed of
        true -> ok;
        false -> #{paused => #{foreign => length(Foreign), own => length(Mine), keep => Keep}}
    end.

%% @doc Why remote retention is paused, for people.
-spec retention_line(retention()) -> binary().
retention_line(ok) ->
    <<"applies: the off-site backups are kept as backup_remote_keep says">>;
retention_line(#{paused := #{foreign := Foreign, own := Own, keep := Keep}}) ->
    text(
        "paused: there are ~b backup(s) in the bucket that this node did not upload (another node's, or its own "
        "from before its data/emqx_guard was lost); none is deleted until this node has uploaded ~b of its own "
        "(~b so far), or after guard backup_remote_prune --confirm",
        [Foreign, Keep, Own]
    ).

%% @doc The destination a Config names, as `endpoint/bucket/prefix' (the default endpoint is
%% AWS's): what a confirmation of remote retention is tied to.
-spec destination(emqx_guard_nif:offsite_config()) -> binary().
destination(Config) ->
    Endpoint =
        case maps:get(endpoint, Config, undefined) of
            undefined -> <<"aws">>;
            E -> E
        end,
    iolist_to_binary([Endpoint, "/", maps:get(bucket, Config), "/", maps:get(prefix, Config, <<>>)]).

%% @doc The destination for people: `s3://bucket[/prefix]'.
-spec where(emqx_guard_nif:offsite_config()) -> binary().
where(#{bucket := Bucket} = Config) ->
    case maps:get(prefix, Config, <<>>) of
        <<>> -> text("s3://~ts", [Bucket]);
        Prefix -> text("s3://~ts/~ts", [Bucket, Prefix])
    end.

job_opts(#{io_limit := Limit}) -> emqx_guard_backups:job_opts(Limit).

%% One upload, tried again after each wait while the reason may pass.
%% An export that went up takes its plugins companion along (`emqx_guard_companion:also/2').
upload(Config, File, Path, Opts) ->
    Waits = application:get_env(emqx_guard, offsite_retry_ms, ?RETRY_MS),
    Done = upload(Config, File, Path, Opts, Waits),
    _ = [emqx_guard_companion:also(Path, fun(C) -> upload(Config, filename:basename(C), C, Opts, Waits) end) || element(1, Done) =:= ok],
    Done.

upload(Config, File, Path, Opts, Waits) ->
    T0 = erlang:monotonic_time(millisecond),
    Result =
        case emqx_guard_core:offsite_upload_async(Config, Path, Opts) of
            {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
            {error, _} = Error -> Error
        end,
    case {Result, Waits} of
        {{ok, R = #{name := Name}}, _} ->
            {ok, #{
                at => erlang:system_time(millisecond),
                file => File,
                name => Name,
                bytes => maps:get(size, R, 0),
                duration_ms => erlang:monotonic_time(millisecond) - T0,
                reused => maps:get(reused, R, false) =:= true
            }};
        {{error, {Reason, _}}, [Wait | More]} ->
            case emqx_guard_retry:retryable(upload, Reason) of
                true ->
                    ?LOG_WARNING(#{msg => emqx_guard_offsite_retry, file => File, reason => Reason, wait_ms => Wait}),
                    timer:sleep(Wait),
                    upload(Config, File, Path, Opts, More);
                false ->
                    Result
            end;
        {{error, _}, _} ->
            Result
    end.

list(Config, Opts) ->
    case emqx_guard_core:offsite_list_async(Config, Opts) of
        {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
        {error, _} = Error -> Error
    end.

names(Remote) ->
    [N || #{name := N} <- Remote].

log(Backup, #{result := ok} = R) ->
    ?LOG_INFO(#{
        msg => emqx_guard_offsite_done,
        file => file_of(Backup),
        uploaded => maps:get(uploaded, R),
        pruned => maps:get(pruned, R)
    });
log(Backup, #{error := Line} = R) ->
    ?LOG_WARNING(#{msg => emqx_guard_offsite_failed, file => file_of(Backup), uploaded => maps:get(uploaded, R), error => Line}).

file_of(#{file := F}) -> F;
file_of(undefined) -> undefined.

%% @doc One line for people about an off-site job's result.
-spec summary(result()) -> binary().
summary(#{result := ok, uploaded := Up, pruned := Pruned} = R) ->
    unicode:characters_to_binary([
        case Up of
            [] -> "nothing to upload";
            _ -> ["uploaded ", lists:join(", ", Up)]
        end,
        case Pruned of
            [] -> [];
            _ -> io_lib:format("; ~b older remote backup(s) pruned", [length(Pruned)])
        end,
        case maps:get(retention, R, ok) of
            #{paused := _} -> "; remote retention paused";
            _ -> []
        end
    ]);
summary(#{result := failed, error := Line}) ->
    <<"FAILED: ", Line/binary>>.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
