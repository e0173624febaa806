%% @doc TEST-ONLY stand-in for EMQX's API keys, `emqx_mgmt_auth' (apps/emqx_management).
%%
%% As EMQX keeps them: every API key is a record of the replicated table `emqx_app'
%% (`{emqx_app, Name, ApiKey, SecretHash, Enable, Extra, ExpiredAt, CreatedAt}'), the keys of the
%% bootstrap file (`api_key.bootstrap_file', lines `Key:Secret[:Role]', what the EMQX Operator
%% uses on Kubernetes) included: each one named `from_bootstrap_file_' and 16 hex digits of the
%% SHA-512 of its key, `Extra' `#{desc => <<"Bootstrapped From File">>, role => Role}'. A data
%% import writes `emqx_app' records like any other table's (an upsert), so a backup's records can
%% replace a bootstrap key's secret or add a second record with its key.
%% <ul>
%% <li>`try_init_bootstrap_file() -> ok': on a core node reads the file again and force-writes
%%     each key: records of another name holding that key are deleted, then the key's record is
%%     written (EMQX's `do_force_create_app/1'). A file that cannot be read is logged, still
%%     `ok'; on a replicant nothing happens.</li>
%% <li>`authorize(Path, Req, ApiKey, Secret) -> ok | {error, Reason}': the key must be held by
%%     exactly ONE record (two records with one key are `"not_found"', as EMQX's
%%     `find_by_api_key/1' matches a single record), enabled, with the secret's hash.</li>
%% </ul>
%% Test-control API (stand-in only): `set_bootstrap_file(Path | <<>>)' (the config value),
%% `record(Name, ApiKey, Secret)' (a record as the dashboard makes one).
-module(emqx_mgmt_auth).

-export([try_init_bootstrap_file/0, authorize/4]).
-export([set_bootstrap_file/1, record/3, bootstrap_name/1]).

-define(FILE_KEY, {?MODULE, bootstrap_file}).

-spec try_init_bootstrap_file() -> ok | {error, term()}.
try_init_bootstrap_file() ->
    case mria_rlog:role() of
        core ->
            _ = init_bootstrap_file(persistent_term:get(?FILE_KEY, <<>>)),
            ok;
        _ ->
            ok
    end.

-spec authorize(binary(), map(), binary(), binary()) -> ok | {error, term()}.
authorize(_Path, _Req, ApiKey, Secret) ->
    case [R || R <- emqx_guard_standin_db:rows(emqx_app), element(3, R) =:= ApiKey] of
        [{emqx_app, _, _, Hash, true, _, _, _}] ->
            case hash(Secret) =:= Hash of
                true -> ok;
                false -> {error, "secret_error"}
            end;
        [{emqx_app, _, _, _, false, _, _, _}] ->
            {error, "secret_disable"};
        _ ->
            {error, "not_found"}
    end.

%% @doc Stand-in only: the value of `api_key.bootstrap_file'.
-spec set_bootstrap_file(file:filename_all()) -> ok.
set_bootstrap_file(File) ->
    persistent_term:put(?FILE_KEY, File).

%% @doc Stand-in only: an `emqx_app' record as the dashboard makes one.
-spec record(binary(), binary(), binary()) -> tuple().
record(Name, ApiKey, Secret) ->
    {emqx_app, Name, ApiKey, hash(Secret), true, #{desc => <<>>, role => <<"administrator">>}, infinity, 0}.

%% @doc Stand-in only: the name EMQX gives a bootstrap key's record.
-spec bootstrap_name(binary()) -> binary().
bootstrap_name(ApiKey) ->
    <<Int:512>> = crypto:hash(sha512, ApiKey),
    Hex = list_to_binary(string:slice(io_lib:format("~128.16.0b", [Int]), 0, 16)),
    <<"from_bootstrap_file_", Hex/binary>>.

init_bootstrap_file(<<>>) ->
    ok;
init_bootstrap_file(File) ->
    case file:read_file(File) of
        {ok, Bin} ->
            Lines = [L || L <- binary:split(Bin, <<"\n">>, [global]), string:trim(L) =/= <<>>],
            lists:foreach(fun(L) -> force_create(string:split(string:trim(L), <<":">>, all)) end, Lines);
        {error, Reason} ->
            logger:error(#{msg => "failed_to_open_the_bootstrap_file", file => File, reason => Reason}),
            {error, Reason}
    end.

force_create([ApiKey, Secret | Rest]) ->
    Role =
        case Rest of
            [R] -> R;
            [] -> <<"administrator">>
        end,
    Name = bootstrap_name(ApiKey),
    [emqx_guard_standin_db:delete(emqx_app, element(2, R)) || R <- emqx_guard_standin_db:rows(emqx_app),
        element(3, R) =:= ApiKey, element(2, R) =/= Name],
    emqx_guard_standin_db:write(
        {emqx_app, Name, ApiKey, hash(Secret), true, #{desc => <<"Bootstrapped From File">>, role => Role}, infinity, 0}
    ).

hash(Secret) ->
    crypto:hash(sha256, Secret).
