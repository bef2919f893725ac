{# 2x1 in SKU label, 203 dpi (406 x 203 dots): one label format per order line, printed qty times. #}
{% for line in lines %}
^XA
^CI28
^PW406
^LL203
^FO16,10^A0N,34,30^FH^FD{{ line.sku }}^FS
^FO16,46^A0N,22,20^FH^FD{{ line.description | default('') | truncate(32, True, '') }}^FS
{# The SKU as Code 128 in subset B (11n + 35 modules) with ten modules of quiet zone either side,
   centred: module width 2 dots up to 13 characters, 1 up to 31 (a longer SKU does not fit the label). #}
^FO{{ [0, (406 - (2 if (line.sku | length) <= 13 else 1) * (11 * (line.sku | length) + 35)) // 2] | max }},74^BY{{ 2 if (line.sku | length) <= 13 else 1 }},3,64^BCN,64,Y,N,N^FH^FD>:{{ line.sku | code128 }}^FS
^FO16,172^A0N,20,18^FH^FDOrder {{ order.order_ref }}^FS
^FO250,172^A0N,20,18^FH^FDQty {{ line.qty }}^FS
^PQ{{ line.qty }}
^XZ
{% endfor %}
