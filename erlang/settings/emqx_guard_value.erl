%% @doc The generic value types of the settings: how a value given as text (by `emqx ctl guard',
%% the dashboard, or read back from the settings file as its stored form) is checked and what
%% is stored for it. The notification settings (`emqx_guard_notify_config', each channel's own
%% keys) and the off-site settings (`emqx_guard_offsite_config') declare their keys with these
%% types; the types `password', `secret', `url' and `any_url' are also what
%% `emqx_guard_redact' hides.
%%
%% <ul>
%% <li>`text', `path': trimmed text; `password': text as given (a password may start or end
%%     with a blank); `secret': trimmed text without control characters;</li>
%% <li>`host': a host name or address without blanks (or empty); `port': 1..65535;</li>
%% <li>`smtp_tls': `none', `starttls' or `tls' (any case);</li>
%% <li>`address': an e-mail address (a display name allowed) or empty; `addresses', `mobiles',
%%     `hosts': a list given as a list of texts or as one text separated by commas, semicolons
%%     or blanks;</li>
%% <li>`channel_id': a chat channel ID like `C0123ABCDEF' (or empty);</li>
%% <li>`any_url': an http(s) URL; `url': a URL for a chat service (https, or http where
%%     `emqx_guard_notify_config:url_allowed/2' lets it); both may be empty;</li>
%% <li>`bool': `on'/`off', `true'/`false', `yes'/`no', `1'/`0' (any case) or a boolean.</li>
%% </ul>
%% Every stored value checks again to itself. A refused value gets `{invalid_value, Line}', one
%% line naming the setting and what it must be; a secret is never quoted in it, a URL only as
%% `emqx_guard_redact:url/1' writes it. Line breaks and other control characters are refused
%% wherever they could add a header line to an e-mail or break a request. The plugin's state
%% files check the values they read back with `is_text/1', `is_texts/1' and `is_instant/1'.
-module(emqx_guard_value).

-export([check/3, parse_bool/1, text/1]).
%% What a value read back from one of the plugin's files may be.
-export([is_text/1, is_texts/1, is_instant/1]).

-export_type([type/0]).

%% 9999-12-31 23:59:59.999 UTC in Unix ms: the latest instant a stored value may hold.
-define(MAX_INSTANT_MS, 253402300799999).

-type type() ::
    host | port | smtp_tls | text | password | address | addresses | any_url | url | secret
    | path | bool | mobiles | hosts | channel_id.

%% @doc Checks Raw as a value of Type for the setting named Key: the value to store, or
%% `{invalid_value, Line}', Line the sentence that says what is wrong.
-spec check(type(), binary(), term()) -> {ok, term()} | {error, {invalid_value, binary()}}.
check(Type, Key, Raw) ->
    try
        checked(Type, Key, Raw)
    catch
        throw:{invalid, Line} -> {error, {invalid_value, Line}}
    end.

%% @doc `on'/`off', `true'/`false', `yes'/`no', `1'/`0' (any case) or a boolean.
-spec parse_bool(term()) -> {ok, boolean()} | error.
parse_bool(B) when is_boolean(B) -> {ok, B};
parse_bool(Raw) ->
    case text(Raw) of
        {ok, T} ->
            case string:lowercase(string:trim(T)) of
                V when V =:= <<"on">>; V =:= <<"true">>; V =:= <<"yes">>; V =:= <<"1">> -> {ok, true};
                V when V =:= <<"off">>; V =:= <<"false">>; V =:= <<"no">>; V =:= <<"0">> -> {ok, false};
                _ -> error
            end;
        error ->
            error
    end.

%% @doc A value given as text (a UTF-8 binary, a charlist, or an atom) as a UTF-8 binary;
%% `error' for anything else (a binary that is not UTF-8 included).
-spec text(term()) -> {ok, binary()} | error.
text(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        B -> {ok, B};
        _ -> error
    end;
text(L) when is_list(L) ->
    try unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    catch
        error:badarg -> error
    end;
text(A) when is_atom(A) ->
    {ok, atom_to_binary(A)};
text(_) ->
    error.

%% @doc Whether V is text as the plugin stores it: a UTF-8 binary.
-spec is_text(term()) -> boolean().
is_text(V) when is_binary(V) ->
    unicode:characters_to_binary(V) =:= V;
is_text(_) ->
    false.

%% @doc Whether V is a list of texts (`is_text/1').
-spec is_texts(term()) -> boolean().
is_texts(V) ->
    is_list(V) andalso lists:all(fun is_text/1, V).

%% @doc Whether V is an instant the plugin may hold: Unix ms from 1970 to the end of 9999.
-spec is_instant(term()) -> boolean().
is_instant(V) ->
    is_integer(V) andalso V >= 0 andalso V =< ?MAX_INSTANT_MS.

%%--------------------------------------------------------------------------------------------

checked(host, Key, Raw) ->
    T = trimmed(Raw, Key),
    case T =:= <<>> orelse re:run(T, "\\s", [unicode]) =:= nomatch of
        true -> {ok, T};
        false -> invalid([Key, " must be a host name or address without spaces"])
    end;
checked(port, _Key, P) when is_integer(P), P >= 1, P =< 65535 ->
    {ok, P};
checked(port, Key, Raw) when not is_integer(Raw) ->
    T = trimmed(Raw, Key),
    case string:to_integer(T) of
        {P, <<>>} when is_integer(P) -> checked(port, Key, P);
        _ -> invalid([Key, " must be a number from 1 to 65535, not \"", T, "\""])
    end;
checked(port, Key, P) ->
    invalid(io_lib:format("~ts must be a number from 1 to 65535, not ~p", [Key, P]));
checked(smtp_tls, Key, Raw) ->
    case string:lowercase(trimmed(Raw, Key)) of
        M when M =:= <<"none">>; M =:= <<"starttls">>; M =:= <<"tls">> -> {ok, M};
        M -> invalid([Key, " must be none, starttls or tls, not \"", M, "\""])
    end;
checked(Type, Key, Raw) when Type =:= text; Type =:= path ->
    {ok, trimmed(Raw, Key)};
checked(password, Key, Raw) ->
    %% Not trimmed: a password may start or end with a space. Never echoed in an error.
    case text(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid([Key, " must be text"])
    end;
checked(secret, Key, Raw) ->
    {ok, no_control(trimmed(Raw, Key), Key)};
checked(address, Key, Raw) ->
    T = no_control(trimmed(Raw, Key), Key),
    case T =:= <<>> orelse looks_like_address(T) of
        true -> {ok, T};
        false -> invalid([Key, " must be an e-mail address like guard@example.com, not \"", T, "\""])
    end;
checked(addresses, Key, Raw) ->
    case [A || A <- items(Raw, Key), not looks_like_address(A)] of
        [] -> {ok, items(Raw, Key)};
        [Bad | _] -> invalid([Key, ": \"", Bad, "\" is not an e-mail address"])
    end;
checked(mobiles, Key, Raw) ->
    case [M || M <- items(Raw, Key), re:run(M, "^\\+?[0-9][0-9-]{2,24}$") =:= nomatch] of
        [] -> {ok, items(Raw, Key)};
        [Bad | _] -> invalid([Key, ": \"", Bad, "\" is not a mobile number"])
    end;
checked(hosts, Key, Raw) ->
    {ok, [string:lowercase(H) || H <- items(Raw, Key)]};
checked(channel_id, Key, Raw) ->
    T = no_control(trimmed(Raw, Key), Key),
    case T =:= <<>> orelse re:run(T, "^[#A-Za-z0-9._-]+$") =/= nomatch of
        true -> {ok, T};
        false -> invalid([Key, " must be a channel ID like C0123ABCDEF"])
    end;
checked(Type, Key, Raw) when Type =:= any_url; Type =:= url ->
    case no_control(trimmed(Raw, Key), Key) of
        <<>> -> {ok, <<>>};
        T -> checked_url(Type, Key, T)
    end;
checked(bool, Key, Raw) ->
    case parse_bool(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid([Key, " must be on or off (true or false)"])
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

checked_url(Type, Key, T) ->
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

trimmed(Raw, Key) ->
    case text(Raw) of
        {ok, B} -> string:trim(B);
        error -> invalid([Key, " must be text"])
    end.

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
