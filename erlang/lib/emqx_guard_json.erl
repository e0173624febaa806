%% @doc A small JSON encoder (RFC 8259) for the webhook and the chat channels, and a decoder
%% for the services' answers; OTP 25 has no `json' module.
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
%%
%% `decode/1' reads a JSON text into maps with binary keys, lists, binaries, numbers, `true',
%% `false' and `null'; anything that is not one JSON value gives `error'.
-module(emqx_guard_json).

-export([encode/1, pretty/1, decode/1]).

%% @doc The JSON text of Term as a UTF-8 binary.
-spec encode(term()) -> binary().
encode(Term) ->
    iolist_to_binary(value(Term)).

%% @doc `encode/1' laid out for people too: each member of an object or array on a line of its
%% own, indented by two spaces per level (empty ones as `{}' and `[]'); the same JSON value.
-spec pretty(term()) -> binary().
pretty(Term) ->
    iolist_to_binary(pretty(Term, 0)).

pretty(M, Level) when is_map(M), map_size(M) > 0 ->
    Pairs = lists:sort([{key(K), V} || {K, V} <- maps:to_list(M)]),
    block(${, $}, [[string(K), ": ", pretty(V, Level + 1)] || {K, V} <- Pairs], Level);
pretty(L, Level) when is_list(L), L =/= [] ->
    block($[, $], [pretty(V, Level + 1) || V <- L], Level);
pretty(Other, _Level) ->
    value(Other).

block(Open, Close, Members, Level) ->
    Inner = lists:duplicate(2 * (Level + 1), $\s),
    [Open, $\n, Inner, lists:join([$,, $\n, Inner], Members), $\n, lists:duplicate(2 * Level, $\s), Close].

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

%% @doc The term of a JSON text, or `error' when it is not JSON.
-spec decode(binary()) -> {ok, term()} | error.
decode(Bin) when is_binary(Bin) ->
    try dvalue(ws(Bin)) of
        {V, Rest} ->
            case ws(Rest) of
                <<>> -> {ok, V};
                _ -> error
            end
    catch
        _:_ -> error
    end.

ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(R);
ws(B) -> B.

dvalue(<<"{", R/binary>>) -> dobject(ws(R), #{});
dvalue(<<"[", R/binary>>) -> darray(ws(R), []);
dvalue(<<"\"", R/binary>>) -> dstring(R, []);
dvalue(<<"true", R/binary>>) -> {true, R};
dvalue(<<"false", R/binary>>) -> {false, R};
dvalue(<<"null", R/binary>>) -> {null, R};
dvalue(B) -> dnumber(B, []).

dobject(<<"}", R/binary>>, M) when map_size(M) =:= 0 -> {M, R};
dobject(<<"\"", R/binary>>, M) ->
    {K, R1} = dstring(R, []),
    <<":", R2/binary>> = ws(R1),
    {V, R3} = dvalue(ws(R2)),
    case ws(R3) of
        <<",", R4/binary>> -> dobject(ws(R4), M#{K => V});
        <<"}", R4/binary>> -> {M#{K => V}, R4}
    end.

darray(<<"]", R/binary>>, []) -> {[], R};
darray(B, Acc) ->
    {V, R1} = dvalue(B),
    case ws(R1) of
        <<",", R2/binary>> -> darray(ws(R2), [V | Acc]);
        <<"]", R2/binary>> -> {lists:reverse([V | Acc]), R2}
    end.

dstring(<<"\"", R/binary>>, Acc) ->
    {unicode:characters_to_binary(lists:reverse(Acc)), R};
dstring(<<"\\u", H:4/binary, R/binary>>, Acc) ->
    C = binary_to_integer(H, 16),
    case R of
        <<"\\u", L:4/binary, R2/binary>> when C >= 16#D800, C =< 16#DBFF ->
            dstring(R2, [16#10000 + ((C - 16#D800) bsl 10) + (binary_to_integer(L, 16) - 16#DC00) | Acc]);
        _ ->
            dstring(R, [C | Acc])
    end;
dstring(<<"\\", E, R/binary>>, Acc) ->
    dstring(R, [unescape(E) | Acc]);
dstring(<<C/utf8, R/binary>>, Acc) when C >= 16#20 ->
    dstring(R, [C | Acc]).

unescape($n) -> $\n;
unescape($r) -> $\r;
unescape($t) -> $\t;
unescape($b) -> $\b;
unescape($f) -> $\f;
unescape(C) when C =:= $"; C =:= $\\; C =:= $/ -> C.

dnumber(<<C, R/binary>>, Acc) when (C >= $0 andalso C =< $9); C =:= $-; C =:= $+; C =:= $.; C =:= $e; C =:= $E ->
    dnumber(R, [C | Acc]);
dnumber(R, Acc) when Acc =/= [] ->
    S = lists:reverse(Acc),
    case lists:any(fun(C) -> lists:member(C, ".eE") end, S) of
        true -> {list_to_float(S), R};
        false -> {list_to_integer(S), R}
    end.
