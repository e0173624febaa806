%% @doc A small JSON encoder (RFC 8259) for the webhook; OTP 25 has no `json' module.
%%
%% Terms map to JSON as follows:
%% <ul>
%% <li>maps: objects; keys are atoms, binaries or charlists, written as strings; objects are
%%     written with their keys sorted, so the output is deterministic;</li>
%% <li>lists: arrays (a charlist is an array of numbers: pass text as a binary);</li>
%% <li>binaries: strings (must be UTF-8);</li>
%% <li>`true', `false', `null': themselves; `undefined' is `null'; any other atom is a string;</li>
%% <li>integers and finite floats: numbers.</li>
%% </ul>
%% In strings `"' and `\' are escaped, control characters below 0x20 are written as `\n',
%% `\r', `\t', `\b', `\f' or `\u00XX', and U+2028/U+2029 as `\u2028'/`\u2029' (they break
%% JavaScript receivers). Anything else raises `error({json_unencodable, Term})'.
-module(emqx_guard_json).

-export([encode/1]).

%% @doc The JSON text of Term as a UTF-8 binary.
-spec encode(term()) -> binary().
encode(Term) ->
    iolist_to_binary(value(Term)).

value(true) ->
    <<"true">>;
value(false) ->
    <<"false">>;
value(null) ->
    <<"null">>;
value(undefined) ->
    <<"null">>;
value(A) when is_atom(A) ->
    string(atom_to_binary(A, utf8));
value(B) when is_binary(B) ->
    string(B);
value(I) when is_integer(I) ->
    integer_to_binary(I);
value(F) when is_float(F) ->
    float_to_binary(F, [short]);
value(M) when is_map(M) ->
    Pairs = lists:sort([{key(K), V} || {K, V} <- maps:to_list(M)]),
    [${, join([[string(K), $:, value(V)] || {K, V} <- Pairs]), $}];
value(L) when is_list(L) ->
    [$[, join([value(V) || V <- L]), $]];
value(Other) ->
    error({json_unencodable, Other}).

key(K) when is_binary(K) -> K;
key(K) when is_atom(K) -> atom_to_binary(K, utf8);
key(K) when is_list(K) ->
    case unicode:characters_to_binary(K) of
        B when is_binary(B) -> B;
        _ -> error({json_unencodable, K})
    end;
key(K) ->
    error({json_unencodable, K}).

join([]) -> [];
join([H | T]) -> [H | [[$,, X] || X <- T]].

string(B) ->
    case unicode:characters_to_list(B, utf8) of
        Chars when is_list(Chars) -> [$", [char(C) || C <- Chars], $"];
        _ -> error({json_unencodable, B})
    end.

char($") -> <<"\\\"">>;
char($\\) -> <<"\\\\">>;
char($\n) -> <<"\\n">>;
char($\r) -> <<"\\r">>;
char($\t) -> <<"\\t">>;
char($\b) -> <<"\\b">>;
char($\f) -> <<"\\f">>;
char(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
char(16#2028) -> <<"\\u2028">>;
char(16#2029) -> <<"\\u2029">>;
char(C) -> <<C/utf8>>.
