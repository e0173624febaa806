%% @doc The off-site settings: every `backup_remote_*' key, its type, default and validation, the
%% rules between them, and the NIF `Config' map they make (`emqx_guard_nif' off-site rows).
%%
%% The keys live in the plugin's settings map next to the others (persisted and replicated with
%% them by `emqx_guard_settings' and `emqx_guard_settings_sync'):
%% <ul>
%% <li>`backup_remote_type': `<<"off">>' (default) or `<<"s3">>';</li>
%% <li>`backup_remote_bucket', `backup_remote_prefix', `backup_remote_region' (`us-east-1'),
%%     `backup_remote_endpoint' (`http(s)://host[:port]', empty: AWS), `backup_remote_access_key',
%%     `backup_remote_secret_key' (a secret: never printed or logged), `backup_remote_path_style'
%%     (false), `backup_remote_tls_verify' (true), `backup_remote_ca_file',
%%     `backup_remote_recipient' (an age X25519 recipient `age1...'; empty: no encryption),
%%     `backup_remote_concurrency' (parts of an upload or ranges of a fetch in flight at once,
%%     1 to 64; 4: a transfer holds at most that many parts of 16 MiB in memory).</li>
%% </ul>
%% Generic types (text, secret, bool, path) are checked by `emqx_guard_value:check/3';
%% the secret key (its type is `secret') is hidden by `emqx_guard_redact' wherever settings are
%% shown, logged or returned.
-module(emqx_guard_offsite_config).

-export([keys/0, defaults/0, specs/0, validate/2, check/1, enabled/1, to_nif/1]).

%% The most parts or ranges in flight (the core's MAX_CONCURRENCY).
-define(MAX_CONCURRENCY, 64).

-type key() :: atom().
-export_type([key/0]).

%% @doc Every `backup_remote_*' key, in display order.
-spec keys() -> [key()].
keys() ->
    [K || {K, _, _} <- specs()].

%% @doc The defaults: no remote destination.
-spec defaults() -> #{key() => term()}.
defaults() ->
    maps:from_list([{K, D} || {K, _, D} <- specs()]).

%% @doc Every key with its type and default.
-spec specs() -> [{key(), atom(), term()}].
specs() ->
    [
        {backup_remote_type, remote_type, <<"off">>},
        {backup_remote_bucket, name, <<>>},
        {backup_remote_prefix, prefix, <<>>},
        {backup_remote_region, name, <<"us-east-1">>},
        {backup_remote_endpoint, endpoint, <<>>},
        {backup_remote_access_key, name, <<>>},
        {backup_remote_secret_key, secret, <<>>},
        {backup_remote_path_style, bool, false},
        {backup_remote_tls_verify, bool, true},
        {backup_remote_ca_file, path, <<>>},
        {backup_remote_recipient, recipient, <<>>},
        {backup_remote_concurrency, concurrency, 4}
    ].

%% @doc Validates one setting given as text (or its stored type). Returns the stored value or why
%% not (never the secret itself).
-spec validate(key(), term()) -> {ok, term()} | {error, emqx_guard_settings:error()}.
validate(Key, Raw) ->
    case lists:keyfind(Key, 1, specs()) of
        {Key, Type, _} -> check(Type, atom_to_binary(Key), Raw);
        false -> {error, {unknown_setting, Key}}
    end.

check(remote_type, Key, Raw) ->
    case text(Key, Raw) of
        {ok, T} ->
            case string:lowercase(T) of
                V when V =:= <<"s3">>; V =:= <<"off">> -> {ok, V};
                _ -> {error, {invalid_value, <<Key/binary, " must be s3 or off">>}}
            end;
        Error ->
            Error
    end;
check(name, Key, Raw) ->
    plain(Key, Raw, "^[^\\s]*$", " must not contain spaces");
check(prefix, Key, Raw) ->
    case plain(Key, Raw, "^[^\\s]*$", " must not contain spaces") of
        {ok, P} -> {ok, string:trim(P, both, "/")};
        Error -> Error
    end;
check(endpoint, Key, Raw) ->
    plain(Key, Raw, "^(https?://[^\\s/?#]+/?)?$", " must be http(s)://host[:port], e.g. https://s3.eu-central-1.amazonaws.com");
check(recipient, Key, Raw) ->
    plain(Key, Raw, "^(age1[02-9ac-hj-np-z]{58})?$", " must be an age X25519 recipient (age1 and 58 more characters)");
check(concurrency, _Key, N) when is_integer(N), N >= 1, N =< ?MAX_CONCURRENCY ->
    {ok, N};
check(concurrency, Key, Raw) when is_binary(Raw); is_list(Raw) ->
    case text(Key, Raw) of
        {ok, T} ->
            case string:to_integer(string:trim(T)) of
                {N, <<>>} when is_integer(N) -> check(concurrency, Key, N);
                _ -> concurrency_error(Key)
            end;
        Error ->
            Error
    end;
check(concurrency, Key, _) ->
    concurrency_error(Key);
check(Type, Key, Raw) ->
    emqx_guard_value:check(Type, Key, Raw).

concurrency_error(Key) ->
    {error, {invalid_value, unicode:characters_to_binary(
        [Key, " must be a whole number from 1 to ", integer_to_list(?MAX_CONCURRENCY),
         " (parts in flight at once)"])}}.

%% Text without control characters that matches Re (empty always passes the caller's Re).
plain(Key, Raw, Re, Why) ->
    case emqx_guard_value:check(secret, Key, Raw) of
        {ok, T} ->
            case re:run(T, Re, [unicode, {capture, none}]) of
                match -> {ok, T};
                nomatch -> {error, {invalid_value, unicode:characters_to_binary([Key, Why])}}
            end;
        Error ->
            Error
    end.

text(Key, Raw) ->
    emqx_guard_value:check(text, Key, Raw).

%% @doc The rules between keys, for complete settings: an `s3' destination needs a bucket, an
%% access key and a secret key.
-spec check(map()) -> ok | {error, {broken_rule, binary()}}.
check(Settings) ->
    S = maps:merge(defaults(), maps:with(keys(), Settings)),
    case maps:get(backup_remote_type, S) of
        <<"s3">> ->
            Missing = [
                Name
             || {K, Name} <- [{backup_remote_bucket, "bucket"}, {backup_remote_access_key, "access_key"},
                              {backup_remote_secret_key, "secret_key"}],
                maps:get(K, S) =:= <<>>
            ],
            case Missing of
                [] -> ok;
                _ -> {error, {broken_rule, unicode:characters_to_binary(["backup_remote s3 needs ", lists:join(", ", [[N, "=..."] || N <- Missing])])}}
            end;
        _ ->
            ok
    end.

%% @doc Whether a remote destination is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    maps:get(backup_remote_type, Settings, <<"off">>) =:= <<"s3">>.

%% @doc The NIF's off-site `Config' for these settings, or `off'. The application environment
%% `offsite_extra' (a map) is merged in: the tests use it for short timeouts.
-spec to_nif(map()) -> {ok, emqx_guard_nif:offsite_config()} | off.
to_nif(Settings) ->
    case enabled(Settings) of
        false ->
            off;
        true ->
            S = maps:merge(defaults(), maps:with(keys(), Settings)),
            Opt = fun(K) ->
                case maps:get(K, S) of
                    <<>> -> undefined;
                    V -> V
                end
            end,
            Config = #{
                bucket => maps:get(backup_remote_bucket, S),
                access_key => maps:get(backup_remote_access_key, S),
                secret_key => maps:get(backup_remote_secret_key, S),
                prefix => maps:get(backup_remote_prefix, S),
                region => Opt(backup_remote_region),
                endpoint => Opt(backup_remote_endpoint),
                path_style => maps:get(backup_remote_path_style, S),
                tls_verify => maps:get(backup_remote_tls_verify, S),
                ca_file => Opt(backup_remote_ca_file),
                recipient => Opt(backup_remote_recipient),
                concurrency => maps:get(backup_remote_concurrency, S)
            },
            {ok, maps:merge(Config, application:get_env(emqx_guard, offsite_extra, #{}))}
    end.
