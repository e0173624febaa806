%% @doc The plugin's own HTTP API and page (EMQX 6.1.1+): EMQX's plugin API gateway hands every
%% request to `/api/v5/plugin_api/emqx_guard/...' to `emqx_guard_app:on_handle_api_call/4',
%% which calls `handle/4' here. The API is the command line's other face: every answer comes
%% from the functions behind `emqx ctl guard' (`emqx_guard_report' for status and listings,
%% `emqx_guard_settings_sync:update/1' for settings, the jobs of `emqx_guard_api_jobs' for what
%% takes longer than the gateway's 5 s), never from a copy of them.
%%
%% | method, path | answer |
%% |---|---|
%% | `GET ui' | the page (`priv/ui.html'; the dashboard shows it in an iframe: `index' `/ui') |
%% | `GET status' | `guard backup_status --json' |
%% | `GET backups', `?remote=true', `?why=true' | `guard backup_list --json', `--remote --json', `--why' |
%% | `GET backups?remote=true&why=true' | the off-site backups with off-site retention's plan (`backup_prune --dry-run') |
%% | `POST backups' | a backup now: `202' with its job at once |
%% | `GET runs', `GET runs/<id>' | the runs on this node (started here, or by the scheduler), one run: steps, result |
%% | `POST backups/<name>/verify' | a full read of one backup (`guard backup_verify <name>'): `202' |
%% | `POST backups/<name>/restore' `{"dry_run": bool}' | `guard backup_restore' (default: dry run): `202' |
%% | `GET settings', `PUT settings' | every setting (secrets hidden); a change, validated as the CLI's |
%% | `POST settings/check' | the same validation of each value, nothing changed (the page's inline check) |
%% | `POST notify/test', `GET notify/test' | `guard notify_test' started; its newest result |
%%
%% Who may: only the global namespace (`Context' key `namespace' is the atom `global'; a
%% namespaced caller gets 403 for everything, as EMQX 6.1.2 keeps backup downloads to the global
%% administrator); the calls that change something (POST, PUT) need the role
%% `<<"administrator">>' in `Context''s `auth_meta' `actor' (EMQX's RBAC actor context, for a
%% dashboard user and an API key alike); anyone else (a viewer, or no actor at all) gets 403.
%% Errors are `{error, Status, #{}, #{code, message}}' as EMQX's own API answers them, the
%% message the one line of `emqx_guard_outcome:format_error/1'; an unknown path is
%% `{error, not_found}'. No response header but `content-type' and the page's `cache-control'
%% (EMQX 6.3 keeps only allow-listed ones). A crash never reaches EMQX: it is logged and answered 500.
-module(emqx_guard_api).

-include_lib("kernel/include/logger.hrl").

-export([handle/4, json_safe/1]).

-export_type([answer/0]).

-type answer() ::
    {ok, pos_integer(), #{binary() => binary()}, term()}
    | {error, pos_integer(), #{binary() => binary()}, #{code := binary(), message := binary()}}
    | {error, not_found}.

%% How long `GET backups?remote=true' waits for the bucket (the gateway gives a call 5 s).
-define(REMOTE_WAIT_MS, 3500).
-define(ADMIN, <<"administrator">>).

%% @doc Answers one request of the gateway: Method (`get | post | put | patch | delete'), the
%% path after the plugin's name (percent-decoded segments), Request (`query_string', `headers',
%% `body' as decoded JSON) and Context (`namespace', `auth_meta').
-spec handle(atom(), [binary()], map(), map()) -> answer().
handle(Method, Path, Request, Context) ->
    try
        case access(Context) of
            namespaced ->
                refuse(403, <<"FORBIDDEN">>, <<"emqx_guard's backups are for the global namespace only">>);
            Role ->
                route(Method, Path, Request, Role)
        end
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => emqx_guard_api_crash, method => Method, path => Path, class => Class,
                         reason => emqx_guard_redact:term(Reason), stacktrace => emqx_guard_redact:term(Stack)}),
            refuse(500, <<"INTERNAL_ERROR">>, <<"emqx_guard could not answer (see the log)">>)
    end.

%% `admin', `viewer' or `namespaced', from what EMQX's gateway put in Context.
access(Context = #{namespace := global}) ->
    case Context of
        #{auth_meta := #{actor := #{role := ?ADMIN}}} -> admin;
        _ -> viewer
    end;
access(_Context) ->
    namespaced.

%%--------------------------------------------------------------------

route(get, [<<"ui">>], _Request, _Role) ->
    page();
route(get, [<<"status">>], _Request, _Role) ->
    ok_json(200, emqx_guard_report:status());
route(get, [<<"backups">>], Request, _Role) ->
    Query = maps:get(query_string, Request, #{}),
    case {flag(<<"remote">>, Query), flag(<<"why">>, Query)} of
        {true, true} -> answer(emqx_guard_report:remote_backups_why(?REMOTE_WAIT_MS));
        {true, false} -> answer(emqx_guard_report:remote_backups(?REMOTE_WAIT_MS));
        {false, true} -> answer(emqx_guard_report:backups_why());
        {false, false} -> answer(emqx_guard_report:backups());
        _ -> bad_request(<<"remote and why take true or false">>)
    end;
route(get, [<<"runs">>], _Request, _Role) ->
    ok_json(200, #{<<"runs">> => emqx_guard_api_jobs:list()});
route(get, [<<"runs">>, Id], _Request, _Role) ->
    case emqx_guard_api_jobs:get(Id) of
        {ok, Doc} -> ok_json(200, Doc);
        {error, not_found} -> refuse(404, <<"NOT_FOUND">>, <<"no such run: ", Id/binary>>)
    end;
route(get, [<<"settings">>], _Request, _Role) ->
    ok_json(200, settings_doc());
route(post, [<<"settings">>, <<"check">>], Request, _Role) ->
    check_settings(maps:get(body, Request, #{}));
route(get, [<<"notify">>, <<"test">>], _Request, _Role) ->
    case emqx_guard_api_jobs:latest(notify_test) of
        {ok, Doc} -> ok_json(200, Doc);
        {error, not_found} -> refuse(404, <<"NOT_FOUND">>, <<"no notification test was sent yet (POST notify/test)">>)
    end;
route(Method, Path, Request, admin) ->
    write(Method, Path, maps:get(body, Request, #{}));
route(Method, Path, _Request, viewer) ->
    case write_path(Method, Path) of
        true -> refuse(403, <<"FORBIDDEN">>, <<"only an administrator may do this (this login is a viewer)">>);
        false -> {error, not_found}
    end.

write_path(post, [<<"backups">>]) -> true;
write_path(post, [<<"backups">>, _, <<"verify">>]) -> true;
write_path(post, [<<"backups">>, _, <<"restore">>]) -> true;
write_path(put, [<<"settings">>]) -> true;
write_path(post, [<<"notify">>, <<"test">>]) -> true;
write_path(_, _) -> false.

write(post, [<<"backups">>], _Body) ->
    started(emqx_guard_api_jobs:start(backup, #{}));
write(post, [<<"backups">>, Name, <<"verify">>], _Body) ->
    with_backup(Name, fun() -> started(emqx_guard_api_jobs:start(verify, #{name => Name})) end);
write(post, [<<"backups">>, Name, <<"restore">>], Body) ->
    case dry_run(Body) of
        {ok, DryRun} ->
            with_backup(Name, fun() -> started(emqx_guard_api_jobs:start(restore, #{name => Name, dry_run => DryRun})) end);
        error ->
            bad_request(<<"the body must be {\"dry_run\": true} or {\"dry_run\": false}">>)
    end;
write(put, [<<"settings">>], Body) ->
    put_settings(Body);
write(post, [<<"notify">>, <<"test">>], _Body) ->
    started(emqx_guard_api_jobs:start(notify_test, #{}));
write(_Method, _Path, _Body) ->
    {error, not_found}.

dry_run(Body) when is_map(Body), map_size(Body) =:= 0 -> {ok, true};
dry_run(#{<<"dry_run">> := B} = Body) when is_boolean(B), map_size(Body) =:= 1 -> {ok, B};
dry_run(_) -> error.

%% Only a backup in the backup directory, by its exact name (never a path).
with_backup(Name, Fun) ->
    case emqx_guard_backups:names() of
        {error, Why} ->
            answer({error, Why});
        Names ->
            case lists:member(Name, Names) of
                true -> Fun();
                false -> refuse(404, <<"NOT_FOUND">>, <<"no backup named ", (printable(Name))/binary, " in the backup directory">>)
            end
    end.

started({ok, Job = #{<<"id">> := Id}}) ->
    ok_json(202, #{<<"id">> => Id, <<"run">> => Job, <<"poll">> => <<"runs/", Id/binary>>});
started({error, {busy, Id}}) ->
    refuse(409, <<"CONFLICT">>, <<"one is running already: runs/", Id/binary>>);
started({error, {already_running, _} = Why}) ->
    refuse(409, <<"CONFLICT">>, emqx_guard_outcome:format_error(Why));
started({error, Why}) ->
    refuse(409, <<"CONFLICT">>, emqx_guard_outcome:format_error(Why)).

%%--------------------------------------------------------------------
%% Settings

%% Every setting in display order, its stored value (which validates again to itself), secrets
%% hidden (`emqx_guard_redact:settings/1').
settings_doc() ->
    Redacted = emqx_guard_redact:settings(emqx_guard_settings:get()),
    Keys = emqx_guard_settings:keys(),
    #{<<"keys">> => Keys, <<"settings">> => maps:from_list([{K, json_safe(maps:get(K, Redacted, null))} || K <- Keys])}.

%% The change goes where `emqx ctl guard <key> <value>' sends it: validated whole (nothing
%% changed on any error), versioned and pushed to every node. A secret sent back as the hidden
%% `******' of `GET settings' is left as it is.
put_settings(Body) when is_map(Body), map_size(Body) > 0 ->
    Current = emqx_guard_settings:get(),
    Redacted = emqx_guard_redact:settings(Current),
    Changes = maps:filter(fun(K, V) -> not hidden_echo(K, V, Current, Redacted) end, Body),
    case emqx_guard_settings_sync:update(Changes) of
        {ok, _New, Unreached} ->
            Doc = settings_doc(),
            ok_json(200, Doc#{<<"warnings">> => [<<"not applied on ", (atom_to_binary(N))/binary, ": ", Why/binary>>
                                                  || {N, Why} <- Unreached]});
        {error, Why} ->
            bad_request(emqx_guard_redact:term(emqx_guard_outcome:format_error(Why), [Current, Body]))
    end;
put_settings(_Body) ->
    bad_request(<<"the body must be a JSON object of settings, e.g. {\"backup_cron\": \"0 3 * * *\"}">>).

%% The page's check of a field as it is left: the validation of each value a change runs
%% (`emqx_guard_settings:validate_changes/1'); nothing is changed.
check_settings(Body) when is_map(Body), map_size(Body) > 0 ->
    case emqx_guard_settings:validate_changes(Body) of
        {ok, _} -> ok_json(200, #{<<"valid">> => true});
        {error, Why} -> bad_request(emqx_guard_redact:term(emqx_guard_outcome:format_error(Why), [Body]))
    end;
check_settings(_Body) ->
    bad_request(<<"the body must be a JSON object of settings to check">>).

hidden_echo(Key, Value, Current, Redacted) when is_binary(Key) ->
    case [K || K <- maps:keys(Current), atom_to_binary(K) =:= Key] of
        [K] -> maps:get(K, Redacted) =:= Value andalso maps:get(K, Current) =/= Value;
        [] -> false
    end;
hidden_echo(_, _, _, _) ->
    false.

%%--------------------------------------------------------------------
%% Answers

page() ->
    File = filename:join(code:priv_dir(emqx_guard), "ui.html"),
    case file:read_file(File) of
        %% not cached: a plugin upgraded shows its new page at once (as EMQX's emqx_acme serves its own)
        {ok, Html} -> {ok, 200, #{<<"content-type">> => <<"text/html; charset=utf-8">>, <<"cache-control">> => <<"no-store">>}, Html};
        {error, Posix} -> refuse(500, <<"INTERNAL_ERROR">>, <<"the page is missing from the package: ", (atom_to_binary(Posix))/binary>>)
    end.

answer({ok, Doc}) -> ok_json(200, Doc);
answer({error, Why}) -> refuse(503, <<"SERVICE_UNAVAILABLE">>, emqx_guard_outcome:format_error(Why)).

ok_json(Status, Doc) ->
    {ok, Status, #{<<"content-type">> => <<"application/json">>}, json_safe(Doc)}.

bad_request(Line) ->
    refuse(400, <<"BAD_REQUEST">>, Line).

refuse(Status, Code, Line) ->
    {error, Status, #{}, #{code => Code, message => Line}}.

flag(Key, Query) ->
    case maps:get(Key, Query, <<"false">>) of
        <<"true">> -> true;
        <<"false">> -> false;
        _ -> bad
    end.

printable(Name) ->
    case io_lib:printable_unicode_list(unicode:characters_to_list(Name)) of
        true -> Name;
        false -> <<"(unprintable)">>
    end.

%% @doc Term as a JSON value EMQX's encoder writes: maps with binary keys, lists, binaries,
%% numbers, `true', `false', `null'; other atoms become strings, `undefined' `null', a printable
%% charlist a string, a binary that is not UTF-8 its base64, any other term its printed form.
-spec json_safe(term()) -> term().
json_safe(M) when is_map(M) ->
    maps:from_list([{key(K), json_safe(V)} || {K, V} <- maps:to_list(M)]);
json_safe(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) andalso L =/= [] of
        true -> unicode:characters_to_binary(L);
        false -> [json_safe(V) || V <- L]
    end;
json_safe(undefined) -> null;
json_safe(A) when is_boolean(A); A =:= null -> A;
json_safe(A) when is_atom(A) -> atom_to_binary(A);
json_safe(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        B -> B;
        _ -> base64:encode(B)
    end;
json_safe(N) when is_number(N) -> N;
json_safe(T) -> unicode:characters_to_binary(io_lib:format("~0tp", [T])).

key(K) when is_binary(K) -> K;
key(K) when is_atom(K) -> atom_to_binary(K);
key(K) -> unicode:characters_to_binary(io_lib:format("~0tp", [K])).
