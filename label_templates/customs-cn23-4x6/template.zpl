{# 4x6 in customs declaration after the UPU's CN 23, 203 dpi (812 x 1218 dots). Order lines may carry
   `hs_code`, `origin_country` and `unit_value` (a decimal text in the order's currency); a line
   without them prints blanks for a person to fill in. The first 12 lines are listed, with a count of
   the rest; the totals cover every line. #}
^XA
^CI28
^PW812
^LL1218
^LH0,0

{# Title, category and the item's tracking number as Code 128 (ten modules of quiet zone either
   side, centred, the module width chosen as on the shipping label) #}
^FO30,20^A0N,40,36^FDCUSTOMS DECLARATION^FS
^FO640,20^A0N,40,36^FB152,1,0,R^FDCN 23^FS
^FO30,64^A0N,22,20^FDMay be opened officially^FS
^FO440,64^A0N,22,20^FB352,1,0,R^FH^FD[X] Sale of goods   Order {{ order.order_ref }}^FS
{% if shipment.tracking %}
{% for digits, n in [((shipment.tracking | trim('0123456789')) == '', shipment.tracking | length)] %}
{% for k in [n // 2 + 2 + (n % 2) * 2 if digits else n + 2] %}
^FO{{ [0, (812 - ([3, [1, 812 // (11 * k + 33)] | max] | min) * (11 * k + 13)) // 2] | max }},96^BY{{ [3, [1, 812 // (11 * k + 33)] | max] | min }},3,90^BCN,90,Y,N,N^FH^FD{% if not digits %}>:{{ shipment.tracking | code128 }}{% elif n % 2 == 0 %}>;{{ shipment.tracking }}{% else %}>;{{ shipment.tracking[:-1] }}>6{{ shipment.tracking[-1:] }}{% endif %}^FS
{% endfor %}
{% endfor %}
{% endif %}
^FO20,222^GB772,3,3^FS

{# Sender, left; addressee, right #}
^FO30,234^A0N,22,20^FDFROM^FS
^FO30,260^A0N,24,22^FB370,1,0,L^FH^FD{{ ship_from.company | default('') or ship_from.name }}^FS
^FO30,288^A0N,24,22^FB370,1,0,L^FH^FD{{ ship_from.street }}^FS
^FO30,316^A0N,24,22^FB370,1,0,L^FH^FD{{ ship_from.postal_code }} {{ ship_from.city }}^FS
^FO30,344^A0N,24,22^FB370,1,0,L^FH^FD{{ ship_from.country }}   {{ ship_from.phone | default('') }}^FS
^FO410,234^A0N,22,20^FDTO^FS
^FO410,260^A0N,24,22^FB382,1,0,L^FH^FD{{ ship_to.name }}^FS
^FO410,288^A0N,24,22^FB382,1,0,L^FH^FD{{ ship_to.street }}{% if ship_to.street2 | default('') %}, {{ ship_to.street2 }}{% endif %}^FS
^FO410,316^A0N,24,22^FB382,1,0,L^FH^FD{{ ship_to.postal_code }} {{ ship_to.city }}{% if ship_to.region | default('') %}, {{ ship_to.region }}{% endif %}^FS
^FO410,344^A0N,24,22^FB382,1,0,L^FH^FD{{ ship_to.country }}   {{ ship_to.phone | default('') }}^FS
^FO20,380^GB772,3,3^FS

{# The content list #}
^FO30,392^A0N,22,20^FDDescription of contents^FS
^FO400,392^A0N,22,20^FB50,1,0,R^FDQty^FS
^FO466,392^A0N,22,20^FDHS code^FS
^FO596,392^A0N,22,20^FDOrigin^FS
^FO662,392^A0N,22,20^FB130,1,0,R^FDValue^FS
^FO20,420^GB772,2,2^FS
{% for line in lines[:12] %}
{% for y, cents in [(396 + loop.index * 34, ((line.unit_value | default(0) | float) * line.qty * 100) | round | int)] %}
^FO30,{{ y }}^A0N,24,22^FB360,1,0,L^FH^FD{{ line.description | default('') or line.sku }}^FS
^FO400,{{ y }}^A0N,24,22^FB50,1,0,R^FH^FD{{ line.qty }}^FS
^FO466,{{ y }}^A0N,24,22^FB124,1,0,L^FH^FD{{ line.hs_code | default('') }}^FS
^FO596,{{ y }}^A0N,24,22^FB60,1,0,L^FH^FD{{ line.origin_country | default('') }}^FS
{% if line.unit_value | default('') %}
^FO662,{{ y }}^A0N,24,22^FB130,1,0,R^FH^FD{{ cents // 100 }}.{{ ('0' ~ cents % 100)[-2:] }}^FS
{% endif %}
{% endfor %}
{% endfor %}
{% if lines | length > 12 %}
^FO30,846^A0N,22,20^FH^FDand {{ (lines | length) - 12 }} more line(s) on the attached list^FS
{% endif %}
^FO20,876^GB772,2,2^FS

{# Totals #}
{% for units in [lines | sum(attribute='qty')] %}
^FO30,888^A0N,26,24^FH^FDTotal: {{ units }} item{{ '' if units == 1 else 's' }}, gross weight {{ parcel.weight_kg }} kg^FS
{% endfor %}
{% if order.value | default(none) %}
^FO440,888^A0N,26,24^FB352,1,0,R^FH^FDTotal value {{ order.value.amount }} {{ order.value.currency }}^FS
{% endif %}
^FO20,926^GB772,3,3^FS

{# Certification, date and signature; parcel n of m #}
^FO30,940^A0N,22,20^FB752,4,4,L^FDI certify that the particulars given in this customs declaration are correct and that this item does not contain any dangerous article or articles prohibited by legislation or by postal or customs regulations.^FS
^FO30,1060^A0N,26,24^FH^FDDate {{ printed_at[:10] }}^FS
^FO330,1060^A0N,26,24^FDSignature^FS
^FO450,1084^GB342,2,2^FS
^FO30,1130^A0N,26,24^FH^FD{{ shipment.carrier }} {{ shipment.service | upper }}^FS
^FO560,1130^A0N,26,24^FB232,1,0,R^FH^FDPARCEL {{ parcel.number }} OF {{ parcel.count }}^FS
^FO30,1176^A0N,22,20^FH^FDStation {{ station }}   Job {{ job_id }}   {{ printed_at }}^FS
^XZ
