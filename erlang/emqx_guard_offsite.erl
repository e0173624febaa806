%% @doc The run's `offsite' step: the off-site copy of a verified backup on S3-compatible storage
%% (only on the node that exported it: only that node runs the run).
%%
%% With a remote destination set (`emqx_guard_offsite_config'), the new backup is uploaded
%% (`emqx_guard_core:offsite_upload_async/3', a background job: hashed, uploaded with per-request
%% checksums, age-encrypted when a recipient is set, then checked with HEAD); a failed upload is
%% tried again after each wait of the `offsite_retry_ms' application environment (default 5 s,
%% then 30 s) unless its reason cannot pass by waiting (`auth', `not_found', `tls', bad settings).
%% Then every local backup among the newest `keep' that verify and is missing remotely is
%% uploaded too (so a copy that failed is made at the next run), and remote retention keeps the
%% newest `keep' there (`offsite_prune_async/4': only export names under the prefix count,
%% nothing else in the bucket is touched). Remote retention runs only when every upload passed.
%%
%% The step never fails the run and never deletes a local backup: the outcome gets `offsite'
%% (`#{result := ok | failed, uploaded := [Name], pruned := [Name], error => Line}') and, on a
%% failure, a warning line; `emqx_guard_alarm' raises or clears `emqx_guard_offsite_failed'.
-module(emqx_guard_offsite).

-include_lib("kernel/include/logger.hrl").

-export([step/2, run/3, summary/1]).

-export_type([result/0]).

-type result() :: #{
    result := ok | failed,
    uploaded := [binary()],
    pruned := [binary()],
    error => binary()
}.

%% Waiting for one job: the NIF bounds every request (timeout_ms, retries); this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).
-define(RETRY_MS, [5000, 30000]).
%% Reasons that waiting does not cure.
-define(FINAL, [auth, not_found, tls, bad_config, bad_name, bad_keep, bad_opts, nif_not_loaded, identity]).

%% @doc The step as the run calls it: Context has the run's `keep', `dir' and `io_limit'. Without a
%% remote destination the outcome is returned as it is.
-spec step(emqx_guard_outcome:outcome(), map()) -> emqx_guard_outcome:outcome().
step(O, Context) ->
    case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
        off -> O;
        {ok, Config} -> run(O, Config, Context)
    end.

%% @doc Copies the outcome's backup (and missing recent ones) to the remote Config and prunes it.
-spec run(emqx_guard_outcome:outcome(), emqx_guard_nif:offsite_config(), map()) -> emqx_guard_outcome:outcome().
run(O = #{path := Path, file := File}, Config, Context = #{keep := Keep, dir := Dir}) ->
    Opts = job_opts(Context),
    Result =
        case upload(Config, Path, Opts) of
            {ok, #{name := Name}} ->
                case missing(Config, Dir, Keep, File, Opts) of
                    {ok, Missing} ->
                        case upload_all(Config, Missing, Opts, [Name]) of
                            {ok, Uploaded} -> prune(Config, Keep, Opts, Uploaded);
                            {error, Uploaded, Why} -> failed(Uploaded, Why)
                        end;
                    {error, Why} ->
                        failed([Name], Why)
                end;
            {error, Why} ->
                failed([], {offsite_upload_failed, File, Why})
        end,
    log(File, Result),
    case Result of
        #{result := failed, error := Line} -> emqx_guard_outcome:warn(O#{offsite => Result}, <<"off-site copy failed: ", Line/binary>>);
        _ -> O#{offsite => Result}
    end;
run(O, _Config, _Context) ->
    O.

failed(Uploaded, Why) ->
    #{result => failed, uploaded => Uploaded, pruned => [], error => emqx_guard_outcome:format_error(Why)}.

job_opts(Context) ->
    case maps:get(io_limit, Context, off) of
        off -> #{};
        Limit -> #{io_limit => Limit}
    end.

%% One upload, tried again after each wait while the reason may pass.
upload(Config, Path, Opts) ->
    upload(Config, Path, Opts, application:get_env(emqx_guard, offsite_retry_ms, ?RETRY_MS)).

upload(Config, Path, Opts, Waits) ->
    Result =
        case emqx_guard_core:offsite_upload_async(Config, Path, Opts) of
            {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
            {error, _} = Error -> Error
        end,
    case {Result, Waits} of
        {{ok, _}, _} ->
            Result;
        {{error, {Reason, _}}, [Wait | More]} ->
            case lists:member(Reason, ?FINAL) of
                true ->
                    Result;
                false ->
                    ?LOG_WARNING(#{msg => emqx_guard_offsite_retry, path => Path, reason => Reason, wait_ms => Wait}),
                    timer:sleep(Wait),
                    upload(Config, Path, Opts, More)
            end;
        {{error, _}, []} ->
            Result
    end.

upload_all(_Config, [], _Opts, Uploaded) ->
    {ok, Uploaded};
upload_all(Config, [#{path := Path, name := File} | Rest], Opts, Uploaded) ->
    case upload(Config, Path, Opts) of
        {ok, #{name := Name}} -> upload_all(Config, Rest, Opts, Uploaded ++ [Name]);
        {error, Why} -> {error, Uploaded, {offsite_upload_failed, File, Why}}
    end.

%% The local backups among the newest Keep that verify, other than the new one, whose export has
%% no remote object, oldest first.
missing(Config, Dir, Keep, New, Opts) ->
    case list(Config, Opts) of
        {ok, Remote} ->
            There = [E || #{export_name := E} <- Remote],
            case emqx_guard_backups:list(Dir) of
                {ok, Local} ->
                    Recent = lists:sublist([B || B = #{verified := ok} <- Local], Keep),
                    {ok, lists:reverse([B || B = #{name := N} <- Recent, N =/= New, not lists:member(N, There)])};
                {error, Line} ->
                    {error, {offsite_local_list_failed, Line}}
            end;
        {error, Why} ->
            {error, {offsite_list_failed, Why}}
    end.

list(Config, Opts) ->
    case emqx_guard_core:offsite_list_async(Config, Opts) of
        {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
        {error, _} = Error -> Error
    end.

prune(Config, Keep, Opts, Uploaded) ->
    Done =
        case emqx_guard_core:offsite_prune_async(Config, Keep, false, Opts) of
            {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
            {error, _} = Error -> Error
        end,
    case Done of
        {ok, #{deleted := Deleted, failed := []}} ->
            #{result => ok, uploaded => Uploaded, pruned => names(Deleted)};
        {ok, #{deleted := Deleted, failed := [#{name := Name, error := Detail} | _]}} ->
            (failed(Uploaded, {offsite_prune_failed, {remote, <<Name/binary, ": ", Detail/binary>>}}))#{
                pruned => names(Deleted)
            };
        {error, Why} ->
            failed(Uploaded, {offsite_prune_failed, Why})
    end.

names(Remote) ->
    [N || #{name := N} <- Remote].

log(File, #{result := ok} = R) ->
    ?LOG_INFO(#{msg => emqx_guard_offsite_done, file => File, uploaded => maps:get(uploaded, R), pruned => maps:get(pruned, R)});
log(File, #{error := Line} = R) ->
    ?LOG_WARNING(#{msg => emqx_guard_offsite_failed, file => File, uploaded => maps:get(uploaded, R), error => Line}).

%% @doc One line for people about a run's off-site result.
-spec summary(result()) -> binary().
summary(#{result := ok, uploaded := Up, pruned := Pruned}) ->
    unicode:characters_to_binary([
        "uploaded ", lists:join(", ", Up),
        case Pruned of
            [] -> [];
            _ -> io_lib:format("; ~b older remote backup(s) pruned", [length(Pruned)])
        end
    ]);
summary(#{result := failed, error := Line}) ->
    <<"FAILED: ", Line/binary>>.
