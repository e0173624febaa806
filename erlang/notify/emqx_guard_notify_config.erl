%% @doc Notification settings: every `notify_*' key, its type, default and validation, the rules
%% between keys, and when to send.
%%
%% The keys live in the plugin's settings map next to the backup settings (and are persisted
%% with them by `emqx_guard_settings'). Each channel declares its own keys with a type
%% (`emqx_guard_channel:settings/0'); the shared ones are declared here: `notify_tls_verify'
%% (check server certificates, true) and `notify_ca_file' (extra trusted CA PEM file) for SMTP
%% and every https channel, `notify_on_failure' (true), `notify_on_success' (false),
%% `notify_dead_man' (true), `notify_on_offsite_failed' (true: an off-site copy failed) and
%% `notify_on_offsite_ok' (true: off-site copies work again after a failure), and
%% `notify_http_hosts' (hosts a chat channel may reach over plain http besides 127.0.0.1 and ::1;
%% empty by default).
%%
%% The rules between keys (`problems/1', `check/1') keep every channel whole: no signing
%% secret, mobile list, Slack token or channel, or SMTP password without the URL, token or user
%% it belongs to.
%%
%% Secrets are never shown: the types here (`password', `secret', `url', `any_url') are what
%% `emqx_guard_redact' hides before anything is printed, logged or returned.
-module(emqx_guard_notify_config).

-export([
    keys/0,
    defaults/0,
    specs/0,
    of_settings/1,
    validate/2,
    check/1,
    problems/1,
    url_allowed/2,
    to_config/1,
    wants/2,
    parse_bool/1,
    check_value/3
]).

-type key() :: atom().
-type settings() :: #{key() => term()}.
-export_type([key/0, settings/0]).


%% @doc Every notification key, in display order.
-spec keys() -> [key()].
keys() ->
    [K || {K, _, _} <- specs()].

%% @doc The defaults: nothing is sent until a channel is set up.
-spec defaults() -> settings().
defaults() ->
    maps:from_list([{K, D} || {K, _, D} <- specs()]).

%% @doc Every key with its type and default: e-mail, webhook, the shared keys, the chat channels.
-spec specs() -> [emqx_guard_channel:setting()].
specs() ->
    Channel = fun(Kind) -> (emqx_guard_channel:module(Kind)):settings() end,
    Channel(email) ++ Channel(webhook) ++
        [
            {notify_tls_verify, bool, true},
            {notify_ca_file, path, <<>>},
            {notify_on_failure, bool, true},
            {notify_on_success, bool, false},
            {notify_dead_man, bool, true},
            {notify_on_offsite_failed, bool, true},
            {notify_on_offsite_ok, bool, true}
        ] ++
        lists:append([Channel(K) || K <- emqx_guard_channel:kinds(), K =/= email, K =/= webhook]) ++
        [{notify_http_hosts, hosts, []}].

%% @doc The notification settings found in a (possibly older) settings map, defaults for the rest.
-spec of_settings(map()) -> settings().
of_settings(Settings) when is_map(Settings) ->
    maps:merge(defaults(), maps:with(keys(), Settings)).

%% @doc Validates one setting given as text (binary or charlist), or as its stored type.
%% Returns the stored value or one sentence saying what is wrong (never the secret itself).
-spec validate(key(), term()) -> {ok, term()} | {error, binary()}.
validate(Key, Raw) ->
    case lists:keyfind(Key, 1, specs()) of
        {Key, Type, _} ->
            try
                check(Type, atom_to_binary(Key), Raw)
            catch
                throw:{invalid, Line} -> {error, Line}
            end;
        false ->
            {error, unicode:characters_to_binary(io_lib:format("unknown setting ~tp", [Key]))}
    end.

%% @doc Validates Raw as a value of Type (a type of `specs/0': text, path, secret, bool, ...) for the
%% setting named Key: the checks other settings modules share (`emqx_guard_offsite_config').
-spec check_value(atom(), binary(), term()) -> {ok, term()} | {error, binary()}.
check_value(Type, Key, Raw) ->
    try
        check(Type, Key, Raw)
    catch
        throw:{invalid, Line} -> {error, Line}
    end.

%% @doc The rules between keys, for complete settings: the first of `problems/1', or `ok'.
-spec check(map()) -> ok | {error, binary()}.
check(Settings) ->
    case problems(Settings) of
        [{_Keys, Line} | _] -> {error, Line};
        [] -> ok
    end.

%% @doc Every rule between keys the settings break, each with the keys it is about and the one
%% line that says it: a chat webhook over plain http only to an allowed host (`url_allowed/2');
%% and every channel whole: a secret, signing key, mobile list, Slack channel or token, or SMTP
%% password is refused without the URL, token or user it belongs to (`needs/0'), so no change
%% leaves half a channel. `emqx_guard_settings:change/1' refuses a change that breaks a rule
%% about a key it touches.
-spec problems(map()) -> [{[key()], binary()}].
problems(Settings) ->
    S = of_settings(Settings),
    Urls = [{K, maps:get(K, S)} || {K, url, _} <- specs(), maps:get(K, S) =/= <<>>],
    [{[K, notify_http_hosts], Line} || {K, U} <- Urls, {error, Line} <- [url_allowed(U, S)]] ++
        [
            {[K, Needed], unicode:characters_to_binary([atom_to_binary(K), " needs ", atom_to_binary(Needed), " (", Hint, ")"])}
         || {K, Needed, Hint} <- needs(), is_set(maps:get(K, S)), not is_set(maps:get(Needed, S))
        ].

%% What each part of a channel belongs to: a value of the first key is half a channel while the
%% second is empty (the hint is the `guard notify_<channel>' argument that sets it).
needs() ->
    [
        {notify_smtp_password, notify_smtp_user, "user=..."},
        {notify_slack_token, notify_slack_channel, "channel=C..."},
        {notify_slack_channel, notify_slack_token, "token=xoxb-..."},
        {notify_feishu_secret, notify_feishu_url, "url=https://..."},
        {notify_dingtalk_secret, notify_dingtalk_url, "url=https://..."},
        {notify_dingtalk_at_mobiles, notify_dingtalk_url, "url=https://..."}
    ].

is_set(V) ->
    V =/= <<>> andalso V =/= [].

%% @doc Whether a chat channel may POST to Url: https always; plain http only to 127.0.0.1, ::1
%% and the hosts the operator listed in `notify_http_hosts'.
-spec url_allowed(binary(), map()) -> ok | {error, binary()}.
url_allowed(Url, Settings) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} ->
            Allowed = [string:lowercase(H) || H <- maps:get(notify_http_hosts, of_settings(Settings))],
            case {string:lowercase(Scheme), string:lowercase(Host)} of
                {<<"https">>, _} -> ok;
                {<<"http">>, H} when H =:= <<"127.0.0.1">>; H =:= <<"::1">> -> ok;
                {<<"http">>, H} ->
                    case lists:member(H, Allowed) of
                        true -> ok;
                        false -> {error, <<(emqx_guard_redact:url(Url))/binary, " is plain http: use https, or list the host in notify_http_hosts">>}
                    end;
                _ ->
                    {error, <<(emqx_guard_redact:url(Url))/binary, " is not an https URL">>}
            end;
        _ ->
            {error, <<"not a URL">>}
    end.

check(host, Key, Raw) ->
    T = trimmed(Raw, Key),
    case T =:= <<>> orelse re:run(T, "\\s", [unicode]) =:= nomatch of
        true -> {ok, T};
        false -> invalid([Key, " must be a host name or address without spaces"])
    end;
check(port, _Key, P) when is_integer(P), P >= 1, P =< 65535 ->
    {ok, P};
check(port, Key, Raw) when not is_integer(Raw) ->
    T = trimmed(Raw, Key),
    case string:to_integer(T) of
        {P, <<>>} when is_integer(P) -> check(port, Key, P);
        _ -> invalid([Key, " must be a number from 1 to 65535, not \"", T, "\""])
    end;
check(port, Key, P) ->
    invalid(io_lib:format("~ts must be a number from 1 to 65535, not ~p", [Key, P]));
check(smtp_tls, Key, A) when is_atom(A) ->
    check(smtp_tls, Key, atom_to_binary(A));
check(smtp_tls, Key, Raw) ->
    case string:lowercase(trimmed(Raw, Key)) of
        M when M =:= <<"none">>; M =:= <<"starttls">>; M =:= <<"tls">> -> {ok, M};
        M -> invalid([Key, " must be none, starttls or tls, not \"", M, "\""])
    end;
check(Type, Key, Raw) when Type =:= text; Type =:= path ->
    {ok, trimmed(Raw, Key)};
check(password, Key, Raw) ->
    %% Not trimmed: a password may start or end with a space. Never echoed in an error.
    case to_bin(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid([Key, " must be text"])
    end;
check(secret, Key, Raw) ->
    {ok, no_control(trimmed(Raw, Key), Key)};
check(address, Key, Raw) ->
    T = no_control(trimmed(Raw, Key), Key),
    case T =:= <<>> orelse looks_like_address(T) of
        true -> {ok, T};
        false -> invalid([Key, " must be an e-mail address like guard@example.com, not \"", T, "\""])
    end;
check(addresses, Key, Raw) ->
    case [A || A <- items(Raw, Key), not looks_like_address(A)] of
        [] -> {ok, items(Raw, Key)};
        [Bad | _] -> invalid([Key, ": \"", Bad, "\" is not an e-mail address"])
    end;
check(mobiles, Key, Raw) ->
    case [M || M <- items(Raw, Key), re:run(M, "^\\+?[0-9][0-9-]{2,24}$") =:= nomatch] of
        [] -> {ok, items(Raw, Key)};
        [Bad | _] -> invalid([Key, ": \"", Bad, "\" is not a mobile number"])
    end;
check(hosts, Key, Raw) ->
    {ok, [string:lowercase(H) || H <- items(Raw, Key)]};
check(channel_id, Key, Raw) ->
    T = no_control(trimmed(Raw, Key), Key),
    case T =:= <<>> orelse re:run(T, "^[#A-Za-z0-9._-]+$") =/= nomatch of
        true -> {ok, T};
        false -> invalid([Key, " must be a channel ID like C0123ABCDEF"])
    end;
check(Type, Key, Raw) when Type =:= any_url; Type =:= url ->
    case no_control(trimmed(Raw, Key), Key) of
        <<>> -> {ok, <<>>};
        T -> check_url(Type, Key, T)
    end;
check(bool, Key, Raw) ->
    case parse_bool(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid([Key, " must be on or off (true or false)"])
    end.

%% @doc `on'/`off', `true'/`false', `yes'/`no', `1'/`0' (any case) or a boolean.
-spec parse_bool(term()) -> {ok, boolean()} | error.
parse_bool(B) when is_boolean(B) -> {ok, B};
parse_bool(Raw) ->
    case to_bin(Raw) of
        {ok, T} ->
            case string:lowercase(string:trim(T)) of
                V when V =:= <<"on">>; V =:= <<"true">>; V =:= <<"yes">>; V =:= <<"1">> -> {ok, true};
                V when V =:= <<"off">>; V =:= <<"false">>; V =:= <<"no">>; V =:= <<"0">> -> {ok, false};
                _ -> error
            end;
        error ->
            error
    end.

%% A list given as a list of texts, or as one text separated by commas, semicolons or blanks.
items(L, Key) when is_list(L), L =/= [], not is_integer(hd(L)) ->
    [no_control(trimmed(A, Key), Key) || A <- L];
items(Raw, Key) ->
    string:lexemes(no_control(trimmed(Raw, Key), Key), ", ;").

%% A light check (the full one happens in lettre when sending): something@something, no spaces
%% or control characters outside a display name.
looks_like_address(T) ->
    Addr =
        case re:run(T, "<([^<>]*)>\\s*$", [{capture, all_but_first, binary}, unicode]) of
            {match, [Inner]} -> Inner;
            nomatch -> T
        end,
    re:run(Addr, "^[^@\\s<>,;]+@[^@\\s<>,;]+$", [unicode]) =/= nomatch.

check_url(Type, Key, T) ->
    case uri_string:parse(T) of
        #{scheme := S, host := H} when H =/= <<>> ->
            case {Type, string:lowercase(S)} of
                {_, <<"https">>} -> {ok, T};
                {_, <<"http">>} -> {ok, T};
                {any_url, _} -> invalid([Key, " must start with http:// or https://, not \"", emqx_guard_redact:url(T), "\""]);
                {url, _} -> invalid([Key, " must be an https:// URL, not \"", emqx_guard_redact:url(T), "\""])
            end;
        _ ->
            invalid([Key, " is not a URL"])
    end.

%% @doc The notification settings as plugin config (binary keys; lists comma-separated).
-spec to_config(map()) -> #{binary() => binary() | integer() | boolean()}.
to_config(Settings) ->
    S = of_settings(Settings),
    maps:from_list([{atom_to_binary(K), config_value(maps:get(K, S))} || K <- keys()]).

config_value(L) when is_list(L) -> iolist_to_binary(lists:join(<<", ">>, L));
config_value(V) -> V.

%% @doc Whether Event is to be sent at all under these settings (a test always is).
-spec wants(emqx_guard_notify_format:event(), map()) -> boolean().
wants(Event, Settings) ->
    S = of_settings(Settings),
    case Event of
        backup_ok -> maps:get(notify_on_success, S);
        backup_failed -> maps:get(notify_on_failure, S);
        dead_man -> maps:get(notify_dead_man, S);
        offsite_failed -> maps:get(notify_on_offsite_failed, S);
        offsite_ok -> maps:get(notify_on_offsite_ok, S);
        test -> true
    end.

%%--------------------------------------------------------------------------------------------

trimmed(Raw, Key) ->
    case to_bin(Raw) of
        {ok, B} -> string:trim(B);
        error -> invalid([Key, " must be text"])
    end.

to_bin(B) when is_binary(B) -> {ok, B};
to_bin(A) when is_atom(A) -> {ok, atom_to_binary(A)};
to_bin(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    end;
to_bin(_) ->
    error.

%% Line breaks and other control characters would let a value add header lines to an e-mail
%% or break a request.
no_control(T, Key) ->
    case re:run(T, "\\p{Cc}", [unicode, ucp]) of
        nomatch -> T;
        _ -> invalid([Key, " must not contain line breaks, tabs or other control characters"])
    end.

-spec invalid(iodata()) -> no_return().
invalid(Line) ->
    throw({invalid, unicode:characters_to_binary(Line)}).
